// A form drawn from the engine's JSON Schema: one field per property, its documentation
// as help, text/number/checkbox/choice inputs for simple values, rhai highlighting for
// expressions, JSON for the rest. A problem located at a field is shown under it.

import { useEffect, useState } from 'react';
import type { Json, JsonObject, Problem } from '../journey/types';
import { choices, fieldsOf, primitive, type Schema } from '../journey/schema';
import { ExprInput } from './ExprInput';

/** Fields holding rhai expressions (by name, or by their documentation). */
function isExpression(name: string, description?: string): boolean {
  return name === 'when' || name === 'until_expr' || /\b(rhai|expression)\b/i.test(description ?? '') && !/duration|date-time/i.test(description ?? '');
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
}: {
  root: Schema;
  schema: Schema;
  value: JsonObject;
  onChange: (v: JsonObject) => void;
  problems: Problem[];
  /** The problems' path of this object (`nodes.wait_2d`). */
  prefix: string;
  skip?: string[];
  readOnly?: boolean;
}) {
  const fields = fieldsOf(root, schema).filter((f) => !skip.includes(f.name));
  const put = (name: string, v: Json | undefined) => {
    const next: JsonObject = { ...value };
    if (v === undefined) delete next[name];
    else next[name] = v;
    onChange(next);
  };
  return (
    <fieldset className="schema-form" disabled={readOnly}>
      {fields.map((f) => {
        const id = `field-${prefix}.${f.name}`.replace(/[^A-Za-z0-9_.-]/g, '_');
        const here = problems.filter((p) => p.path === `${prefix}.${f.name}` || p.path.startsWith(`${prefix}.${f.name}.`) || p.path.startsWith(`${prefix}.${f.name}[`));
        const current = value[f.name];
        const options = choices(root, f.schema);
        const kind = primitive(root, f.schema);
        let input;
        if (options) {
          input = (
            <select id={id} value={typeof current === 'string' ? current : ''} onChange={(e) => put(f.name, e.target.value || undefined)}>
              {!f.required && <option value="">(default)</option>}
              {options.map((o) => (
                <option key={o} value={o}>{o}</option>
              ))}
            </select>
          );
        } else if (kind === 'boolean') {
          input = <input id={id} type="checkbox" checked={current === true} onChange={(e) => put(f.name, e.target.checked)} />;
        } else if (kind === 'number' || kind === 'integer') {
          input = (
            <input id={id} type="number" step={kind === 'integer' ? 1 : 'any'} value={typeof current === 'number' ? current : ''} onChange={(e) => put(f.name, e.target.value === '' ? undefined : Number(e.target.value))} />
          );
        } else if (kind === 'string') {
          const text = typeof current === 'string' ? current : '';
          const change = (v: string) => put(f.name, v === '' && !f.required ? undefined : v);
          input = isExpression(f.name, f.description) ? (
            <ExprInput id={id} label={f.name} value={text} invalid={here.length > 0} onChange={change} />
          ) : (
            <input id={id} type="text" value={text} aria-invalid={here.length > 0} onChange={(e) => change(e.target.value)} />
          );
        } else {
          input = <JsonField id={id} value={current} onChange={(v) => put(f.name, v)} />;
        }
        return (
          <div className={`field${here.length > 0 ? ' invalid' : ''}`} key={f.name} data-field={`${prefix}.${f.name}`}>
            <label htmlFor={id}>
              {f.name}
              {f.required && <span className="required" aria-label="required"> *</span>}
            </label>
            {input}
            {f.description && <div className="help">{f.description}</div>}
            {here.map((p) => (
              <div className="field-problem" role="alert" key={p.path + p.message}>
                {p.path.slice(prefix.length + 1)}: {p.message}
              </div>
            ))}
          </div>
        );
      })}
    </fieldset>
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
