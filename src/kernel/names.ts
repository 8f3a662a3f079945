/** The shapes of names that grants and requests share, and the lengths requests may have. */

/** What a model or field name must look like, in grants and requests alike. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** What an environment variable name must look like. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Length limits of request fields, shared by the schemas and the fast path. */
export const REQUEST_LIMITS = Object.freeze({ name: 256, url: 8192, fields: 1024, argv: 4096 });
