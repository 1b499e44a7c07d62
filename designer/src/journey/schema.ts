// Reading the engine's JSON Schema of the journey format (GET /v1/schema/journey): the
// fields of one node kind, of the entry and of the properties, with their documentation.
// The forms of the properties panel are drawn from what this returns, never from a list
// of fields kept here.

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
  default?: unknown;
}

export interface Field {
  name: string;
  schema: Schema;
  required: boolean;
  description?: string;
}

export function resolve(root: Schema, s: Schema | undefined): Schema {
  let at = s ?? {};
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
  const out = new Map<string, Schema>();
  const u = resolve(root, { $ref: `#/$defs/${union}` });
  for (const option of u.oneOf ?? u.anyOf ?? []) {
    const tag = tagOf(root, option);
    if (tag) out.set(tag, option);
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
