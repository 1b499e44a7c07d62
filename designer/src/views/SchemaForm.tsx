// A form drawn from the engine's JSON Schema: one field per property, its documentation
// as help. Simple values get text/number/checkbox/choice inputs (rhai highlighting for
// expressions); nested objects, unions of tagged objects (`exit: [{type: event}]`), lists
// (branches, reaction events) and maps of names to values (`set`, `params`) get sub-forms
// drawn from the same schema; only values the schema does not describe are JSON text.
// A problem located at a field is shown under it; a problem at a field the form does not
// show (a branch's `next`, drawn on the canvas) is shown under the object holding it.

import { useEffect, useState } from 'react';
import type { Json, JsonObject, Problem } from '../journey/types';
import { blank, fieldsOf, shapeOf, variantsOf, type Schema } from '../journey/schema';
import { ExprInput } from './ExprInput';

/** Fields holding rhai expressions (by name, or by their documentation). */
function isExpression(name: string, description?: string): boolean {
  return name === 'when' || name === 'until_expr' || /\b(rhai|expression)\b/i.test(description ?? '') && !/duration|date-time/i.test(description ?? '');
}

function isObject(v: Json | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function domId(path: string): string {
  return `field-${path}`.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Problems at `path` or below it. */
function under(problems: Problem[], path: string): Problem[] {
  return problems.filter((p) => p.path === path || p.path.startsWith(`${path}.`) || p.path.startsWith(`${path}[`));
}

interface Common {
  root: Schema;
  problems: Problem[];
  readOnly?: boolean;
}

export function SchemaForm({
  root,
  schema,
  value,
  onChange,
  problems,
  prefix,
  skip = [],
  readOnly,
  nested = false,
}: Common & {
  schema: Schema;
  value: JsonObject;
  onChange: (v: JsonObject) => void;
  /** The problems' path of this object (`nodes.wait_2d`). */
  prefix: string;
  skip?: string[];
  /** A sub-form: it also shows the problems of the fields it skips. */
  nested?: boolean;
}) {
  const all = fieldsOf(root, schema);
  const fields = all.filter((f) => !skip.includes(f.name));
  const put = (name: string, v: Json | undefined) => {
    const next: JsonObject = { ...value };
    if (v === undefined) delete next[name];
    else next[name] = v;
    onChange(next);
  };
  const at = (name: string) => (prefix ? `${prefix}.${name}` : name);
  const orphans = nested
    ? problems.filter((p) => p.path === prefix || all.some((f) => skip.includes(f.name) && under([p], at(f.name)).length > 0))
    : [];
  return (
    <fieldset className={`schema-form${nested ? ' nested-form' : ''}`} disabled={readOnly}>
      {fields.map((f) => {
        const path = at(f.name);
        const shape = shapeOf(root, f.schema);
        // A sub-form shows its own fields' problems; a simple input shows all below it.
        const deep = shape.kind === 'object' || shape.kind === 'union' || shape.kind === 'list';
        const here = deep ? problems.filter((p) => p.path === path) : under(problems, path);
        return (
          <div className={`field${here.length > 0 ? ' invalid' : ''}`} key={f.name} data-field={path}>
            <label htmlFor={domId(path)}>
              {f.name}
              {f.required && <span className="required" aria-label="required"> *</span>}
            </label>
            <Editor
              root={root}
              schema={f.schema}
              name={f.name}
              description={f.description}
              required={f.required}
              value={value[f.name]}
              path={path}
              problems={problems}
              invalid={here.length > 0}
              readOnly={readOnly}
              onChange={(v) => put(f.name, v)}
            />
            {f.description && <div className="help">{f.description}</div>}
            <ProblemLines problems={here} prefix={prefix} />
          </div>
        );
      })}
      <ProblemLines problems={orphans} prefix={prefix} />
    </fieldset>
  );
}

function ProblemLines({ problems, prefix }: { problems: Problem[]; prefix: string }) {
  return (
    <>
      {problems.map((p) => (
        <div className="field-problem" role="alert" key={p.path + p.message}>
          {prefix && p.path.startsWith(prefix) ? p.path.slice(prefix.length).replace(/^\./, '') || '(here)' : p.path}: {p.message}
        </div>
      ))}
    </>
  );
}

/** The input of one value, by the shape of its schema. */
function Editor({
  root,
  schema,
  name,
  description,
  required,
  value,
  path,
  problems,
  invalid,
  readOnly,
  onChange,
  label,
}: Common & {
  schema: Schema;
  name: string;
  /** The input's accessible name when no <label> points at it (a list's item). */
  label?: string;
  description?: string;
  required: boolean;
  value: Json | undefined;
  path: string;
  invalid: boolean;
  onChange: (v: Json | undefined) => void;
}) {
  const id = domId(path);
  const shape = shapeOf(root, schema);
  switch (shape.kind) {
    case 'choice':
      return (
        <select id={id} aria-label={label} value={typeof value === 'string' ? value : ''} onChange={(e) => onChange(e.target.value || undefined)}>
          {!required && <option value="">(default)</option>}
          {shape.options.map((o) => (
            <option key={o} value={o}>{o}</option>
          ))}
        </select>
      );
    case 'boolean':
      return <input id={id} aria-label={label} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />;
    case 'number':
    case 'integer':
      return (
        <input id={id} aria-label={label} type="number" step={shape.kind === 'integer' ? 1 : 'any'} value={typeof value === 'number' ? value : ''} onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} />
      );
    case 'string': {
      const text = typeof value === 'string' ? value : '';
      const change = (v: string) => onChange(v === '' && !required ? undefined : v);
      return isExpression(name, description) ? (
        <ExprInput id={id} label={label ?? name} value={text} invalid={invalid} onChange={change} />
      ) : (
        <input id={id} aria-label={label} type="text" value={text} aria-invalid={invalid} onChange={(e) => change(e.target.value)} />
      );
    }
    case 'object':
    case 'union': {
      if (!isObject(value)) {
        return (
          <button type="button" id={id} className="add" disabled={readOnly} onClick={() => onChange(blank(root, schema))}>
            + Add {name}
          </button>
        );
      }
      return (
        <div className="nested">
          <ObjectEditor root={root} schema={schema} value={value} path={path} problems={problems} readOnly={readOnly} onChange={onChange} id={id} />
          {!required && (
            <button type="button" className="link remove" disabled={readOnly} onClick={() => onChange(undefined)}>
              Remove {name}
            </button>
          )}
        </div>
      );
    }
    case 'list':
      return <ListEditor root={root} item={shape.item} name={name} description={description} value={value} path={path} problems={problems} readOnly={readOnly} onChange={onChange} id={id} />;
    case 'map':
      return (
        <MapEditor
          value={value}
          path={path}
          problems={problems}
          id={id}
          expressions={isExpression(name, description)}
          strings={shapeOf(root, shape.value).kind === 'string'}
          onChange={(v) => onChange(Object.keys(v).length === 0 && !required ? undefined : v)}
        />
      );
    default:
      return <JsonField id={id} value={value} onChange={onChange} />;
  }
}

/** An object (or one alternative of a union, with a choice of its `type`). */
function ObjectEditor({ root, schema, value, path, problems, readOnly, onChange, id }: Common & {
  schema: Schema;
  value: JsonObject;
  path: string;
  id: string;
  onChange: (v: JsonObject) => void;
}) {
  const variants = variantsOf(root, schema);
  if (!variants) {
    return <SchemaForm root={root} schema={schema} value={value} prefix={path} problems={problems} readOnly={readOnly} onChange={onChange} skip={['next']} nested />;
  }
  const tag = typeof value.type === 'string' ? value.type : '';
  const variant = variants.get(tag);
  return (
    <>
      <select id={id} aria-label="type" value={tag} onChange={(e) => onChange({ type: e.target.value, ...(blank(root, variants.get(e.target.value) ?? {}) as JsonObject) })}>
        {!variant && <option value="">(choose)</option>}
        {[...variants.keys()].map((k) => (
          <option key={k} value={k}>{k}</option>
        ))}
      </select>
      {variant && (
        <SchemaForm root={root} schema={variant} value={value} prefix={path} problems={problems} readOnly={readOnly} onChange={(v) => onChange({ ...v, type: tag })} skip={['next']} nested />
      )}
    </>
  );
}

/** A list: sub-forms for objects, one input per item for simple values; items added,
 * removed and moved. */
function ListEditor({ root, item, name, description, value, path, problems, readOnly, onChange, id }: Common & {
  item: Schema;
  name: string;
  description?: string;
  value: Json | undefined;
  path: string;
  id: string;
  onChange: (v: Json | undefined) => void;
}) {
  const items = Array.isArray(value) ? value : [];
  const shape = shapeOf(root, item);
  const nested = shape.kind === 'object' || shape.kind === 'union';
  const put = (next: Json[]) => onChange(next);
  const move = (i: number, by: number) => {
    const next = [...items];
    const [moved] = next.splice(i, 1);
    next.splice(i + by, 0, moved);
    put(next);
  };
  const singular = name.replace(/ies$/, 'y').replace(/(ch|sh|x|s)es$/, '$1').replace(/s$/, '');
  return (
    <div className="list" id={nested ? id : undefined}>
      {items.map((v, i) => {
        const at = `${path}[${i}]`;
        const title = isObject(v) ? (typeof v.label === 'string' && v.label) || (typeof v.event === 'string' && v.event) || (typeof v.type === 'string' && v.type) || '' : '';
        const buttons = (
          <span className="item-buttons">
            <button type="button" className="link" aria-label={`Move ${singular} ${i + 1} up`} disabled={readOnly || i === 0} onClick={() => move(i, -1)}>↑</button>
            <button type="button" className="link" aria-label={`Move ${singular} ${i + 1} down`} disabled={readOnly || i === items.length - 1} onClick={() => move(i, 1)}>↓</button>
            <button type="button" className="link remove" aria-label={`Remove ${singular} ${i + 1}`} disabled={readOnly} onClick={() => put(items.filter((_, j) => j !== i))}>×</button>
          </span>
        );
        if (nested && isObject(v)) {
          return (
            <fieldset className="item" key={i} data-field={at}>
              <legend>
                {singular} {i + 1}{title ? `: ${title}` : ''} {buttons}
              </legend>
              <ObjectEditor root={root} schema={item} value={v} path={at} problems={problems} readOnly={readOnly} id={domId(at)} onChange={(nv) => put(items.map((x, j) => (j === i ? nv : x)))} />
            </fieldset>
          );
        }
        const bad = under(problems, at);
        return (
          <div className="item-row" key={i} data-field={at}>
            <Editor
              root={root}
              schema={item}
              name={name}
              label={`${singular} ${i + 1}`}
              description={description}
              required
              value={v}
              path={at}
              problems={problems}
              invalid={bad.length > 0}
              readOnly={readOnly}
              onChange={(nv) => put(items.map((x, j) => (j === i ? (nv ?? '') : x)))}
            />
            {buttons}
            <ProblemLines problems={bad} prefix={path} />
          </div>
        );
      })}
      <button type="button" className="add" id={nested || items.length ? undefined : id} disabled={readOnly} onClick={() => put([...items, blank(root, item)])}>
        + Add {singular}
      </button>
    </div>
  );
}

/** A map of names to values (`set`, `params`, `data`): one row per name, in order. */
function MapEditor({ value, path, problems, id, expressions, strings, onChange }: {
  value: Json | undefined;
  path: string;
  problems: Problem[];
  id: string;
  /** Its string values are rhai expressions. */
  expressions: boolean;
  /** Its values are strings only. */
  strings: boolean;
  onChange: (v: JsonObject) => void;
}) {
  const fromValue = (): [string, Json][] => (isObject(value) ? Object.entries(value) : []);
  // Rows are kept as typed (an empty or repeated name) until they make a valid map.
  const [rows, setRows] = useState<[string, Json][]>(fromValue);
  const shown = JSON.stringify(value ?? {});
  useEffect(() => {
    if (JSON.stringify(Object.fromEntries(rows.filter(([k]) => k !== ''))) !== shown) setRows(fromValue());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shown]);
  const commit = (next: [string, Json][]) => {
    setRows(next);
    const out: JsonObject = {};
    for (const [k, v] of next) if (k !== '' && !(k in out)) out[k] = v;
    onChange(out);
  };
  const parse = (text: string): Json => {
    if (strings) return text;
    // Any other JSON value is taken as it is; text that is not one is a string
    // (an expression, for expression maps).
    try {
      const v = JSON.parse(text) as Json;
      return typeof v === 'string' ? text : v;
    } catch {
      return text;
    }
  };
  const names = rows.map(([k]) => k);
  return (
    <div className="map" id={id}>
      {rows.map(([k, v], i) => {
        const at = `${path}.${k}`;
        const bad = k === '' ? [] : under(problems, at);
        const repeated = k !== '' && names.indexOf(k) !== i;
        const text = typeof v === 'string' ? v : JSON.stringify(v);
        const setValue = (t: string) => commit(rows.map((r, j) => (j === i ? [k, parse(t)] : r)));
        return (
          <div className={`map-row${bad.length || repeated ? ' invalid' : ''}`} key={i} data-field={at}>
            <input type="text" className="map-key" aria-label={`name ${i + 1}`} value={k} placeholder="name" onChange={(e) => commit(rows.map((r, j) => (j === i ? [e.target.value, v] : r)))} />
            {expressions && typeof v === 'string' ? (
              <ExprInput id={`${id}-${i}`} label={k || `value ${i + 1}`} value={text} invalid={bad.length > 0} onChange={setValue} />
            ) : (
              <input type="text" aria-label={k || `value ${i + 1}`} value={text} onChange={(e) => setValue(e.target.value)} />
            )}
            <button type="button" className="link remove" aria-label={`Remove ${k || `row ${i + 1}`}`} onClick={() => commit(rows.filter((_, j) => j !== i))}>×</button>
            {repeated && <div className="field-problem" role="alert">{k}: named twice; the first is kept</div>}
            <ProblemLines problems={bad} prefix={path} />
          </div>
        );
      })}
      <button type="button" className="add" onClick={() => setRows([...rows, ['', '']])}>
        + Add
      </button>
    </div>
  );
}

/** A value edited as JSON text; applied when it parses. */
function JsonField({ id, value, onChange }: { id: string; value: Json | undefined; onChange: (v: Json | undefined) => void }) {
  const shown = value === undefined ? '' : JSON.stringify(value, null, 2);
  const [text, setText] = useState(shown);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setText(shown), [shown]);
  return (
    <>
      <textarea
        id={id}
        className="json"
        spellCheck={false}
        rows={Math.min(12, Math.max(2, text.split('\n').length))}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onBlur={() => {
          if (text.trim() === '') {
            setError(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(text));
            setError(null);
          } catch (e) {
            setError(e instanceof Error ? e.message : String(e));
          }
        }}
      />
      {error && <div className="field-problem" role="alert">not JSON: {error}</div>}
    </>
  );
}
