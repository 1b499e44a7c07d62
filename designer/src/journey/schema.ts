// Reading the engine's JSON Schema of the journey format (GET /v1/schema/journey): the
// fields of one node kind, of the entry and of the properties, with their documentation.
// The forms of the properties panel are drawn from what this returns, never from a list
// of fields kept here.

import type { Json, JsonObject } from './types';

export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  $ref?: string;
  $defs?: Record<string, Schema>;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  description?: string;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  default?: unknown;
}

export interface Field {
  name: string;
  schema: Schema;
  required: boolean;
  description?: string;
}

export function resolve(root: Schema, s: Schema | boolean | undefined): Schema {
  // `true` is the schema of any value (a JSON `Value` field).
  let at: Schema = typeof s === 'object' && s !== null ? s : {};
  for (let hops = 0; at.$ref && hops < 16; hops++) {
    const name = at.$ref.replace(/^#\/(\$defs|definitions)\//, '');
    const { $ref: _ref, ...rest } = at;
    at = { ...(root.$defs?.[name] ?? {}), ...rest };
  }
  return at;
}

/** The schema without its `null` alternative (an optional field). */
export function nonNull(root: Schema, s: Schema): Schema {
  const r = resolve(root, s);
  if (Array.isArray(r.type)) {
    const types = r.type.filter((t) => t !== 'null');
    return { ...r, type: types.length === 1 ? types[0] : types };
  }
  const options = r.anyOf ?? r.oneOf;
  if (options && !r.properties) {
    const rest = options.filter((o) => resolve(root, o).type !== 'null');
    if (rest.length === 1) return { ...nonNull(root, rest[0]), description: r.description ?? resolve(root, rest[0]).description };
  }
  return r;
}

function collect(root: Schema, s: Schema): { properties: Record<string, Schema>; required: string[] } {
  const r = resolve(root, s);
  const properties: Record<string, Schema> = { ...(r.properties ?? {}) };
  const required = [...(r.required ?? [])];
  for (const part of r.allOf ?? []) {
    const c = collect(root, part);
    Object.assign(properties, c.properties);
    required.push(...c.required);
  }
  return { properties, required };
}

function tagOf(root: Schema, option: Schema): string | undefined {
  const t = collect(root, option).properties.type;
  if (!t) return undefined;
  const r = resolve(root, t);
  if (typeof r.const === 'string') return r.const;
  if (Array.isArray(r.enum) && r.enum.length === 1 && typeof r.enum[0] === 'string') return r.enum[0];
  return undefined;
}

/** The alternatives of a tagged union (`NodeDef`, `EntryDef`...), by their `type` tag. */
export function variants(root: Schema, union: string): Map<string, Schema> {
  return variantsOf(root, { $ref: `#/$defs/${union}` }) ?? new Map();
}

/** The alternatives of a union schema by their `type` tag, or none when it is not a union
 * of tagged objects. */
export function variantsOf(root: Schema, s: Schema): Map<string, Schema> | undefined {
  const u = resolve(root, s);
  const options = u.oneOf ?? u.anyOf;
  if (!options || options.length === 0) return undefined;
  const out = new Map<string, Schema>();
  for (const option of options) {
    const tag = tagOf(root, option);
    if (!tag) return undefined;
    out.set(tag, option);
  }
  return out;
}

/** The fields of an object schema (or of one alternative of a union), in schema order. */
export function fieldsOf(root: Schema, s: Schema): Field[] {
  const { properties, required } = collect(root, s);
  return Object.entries(properties)
    .filter(([name]) => name !== 'type')
    .map(([name, schema]) => ({ name, schema, required: required.includes(name), description: resolve(root, schema).description }));
}

/** The choices of an enumeration (`["never", "always", "after"]`), or none. */
export function choices(root: Schema, s: Schema): string[] | undefined {
  const r = nonNull(root, s);
  if (Array.isArray(r.enum) && r.enum.every((v) => typeof v === 'string')) return r.enum as string[];
  const options = r.oneOf ?? r.anyOf;
  if (options) {
    const values = options.map((o) => resolve(root, o)).map((o) => (typeof o.const === 'string' ? o.const : Array.isArray(o.enum) && o.enum.length === 1 ? o.enum[0] : undefined));
    if (values.every((v) => typeof v === 'string')) return values as string[];
  }
  return undefined;
}

export function primitive(root: Schema, s: Schema): 'string' | 'number' | 'integer' | 'boolean' | undefined {
  const t = nonNull(root, s).type;
  return t === 'string' || t === 'number' || t === 'integer' || t === 'boolean' ? t : undefined;
}

/** How a field is edited: a choice, a simple value, a nested object, a union of tagged
 * objects, a list, a map of names to values, or (anything else) JSON text. */
export type Shape =
  | { kind: 'choice'; options: string[] }
  | { kind: 'boolean' | 'number' | 'integer' | 'string' }
  | { kind: 'object'; schema: Schema }
  | { kind: 'union'; variants: Map<string, Schema> }
  | { kind: 'list'; item: Schema }
  | { kind: 'map'; value: Schema }
  | { kind: 'json' };

export function shapeOf(root: Schema, s: Schema): Shape {
  const options = choices(root, s);
  if (options) return { kind: 'choice', options };
  const simple = primitive(root, s);
  if (simple) return { kind: simple };
  const r = nonNull(root, s);
  const union = variantsOf(root, r);
  if (union) return { kind: 'union', variants: union };
  if (r.type === 'array' && r.items) return { kind: 'list', item: r.items };
  const { properties } = collect(root, r);
  if (Object.keys(properties).length > 0) return { kind: 'object', schema: r };
  if (r.type === 'object' && r.additionalProperties !== undefined && r.additionalProperties !== false) {
    return { kind: 'map', value: resolve(root, r.additionalProperties) };
  }
  return { kind: 'json' };
}

/** A new value of a schema: its default, or an object with its required fields. */
export function blank(root: Schema, s: Schema): Json {
  const r = nonNull(root, s);
  if (r.default !== undefined && r.default !== null) return structuredClone(r.default) as Json;
  const shape = shapeOf(root, s);
  switch (shape.kind) {
    case 'choice':
      return shape.options[0];
    case 'boolean':
      return false;
    case 'number':
    case 'integer':
      return 0;
    case 'string':
      return '';
    case 'object':
      return requiredOf(root, shape.schema);
    case 'union': {
      const [tag, variant] = [...shape.variants.entries()][0];
      return { type: tag, ...requiredOf(root, variant) };
    }
    case 'list':
      return [];
    case 'map':
      return {};
    default:
      return null;
  }
}

function requiredOf(root: Schema, s: Schema): JsonObject {
  const out: JsonObject = {};
  for (const f of fieldsOf(root, s)) if (f.required) out[f.name] = blank(root, f.schema);
  return out;
}
