/**
 * Go-style durations (`500ms`, `10s`, `1m30s`). The parser belongs to the agent SDK, which the
 * sidecar's command line and every agent share with the control plane: one grammar, one set of error
 * messages, wherever an operator writes a duration.
 */
export { parseDuration } from '@portico/sdk/duration';
