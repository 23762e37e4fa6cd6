/** What the test upstream's `/bytes/:n` sends over and over: 64 KiB of a pattern that shows a lost, repeated or reordered chunk of any size but 64 KiB. */
export const BYTES_CHUNK = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7 + (i >> 8)) % 251));
