import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { type FastifySchemaCompiler } from 'fastify';

// ajv-formats ships CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const common: Options = {
  // allErrors would let one huge body make the validator collect millions of errors.
  allErrors: false,
  useDefaults: true,
  // Fastify strips unknown fields by default; Portico rejects them, so a typo never passes silently.
  removeAdditional: false,
  strict: false,
};

function makeAjv(coerceTypes: Options['coerceTypes']): Ajv {
  return addFormats(new Ajv({ ...common, coerceTypes }));
}

/**
 * Bodies are validated strictly (a string where a number belongs is an error), while path
 * parameters, query strings and headers, which arrive as text, are coerced to their declared types.
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false);
  const coercing = makeAjv('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
