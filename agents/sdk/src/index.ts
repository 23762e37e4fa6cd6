export { parseDuration } from "./duration.js";
