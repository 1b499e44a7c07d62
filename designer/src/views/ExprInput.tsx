// A rhai expression field with syntax highlighting: a transparent textarea over a
// highlighted copy of its text (no editor library: expressions are one or a few lines).

import { Fragment } from 'react';

const TOKEN = /("(?:[^"\\]|\\.)*"?|`[^`]*`?|'(?:[^'\\]|\\.)*'?)|(\b\d+(?:\.\d+)?\b)|(\b(?:if|else|let|const|fn|return|in|true|false|switch|for|while|loop|break|continue|this)\b)|(\b(?:profile|event|journey|data|now)\b)|(&&|\|\||==|!=|<=|>=|\?\?|[-+*/%<>!=?:])|([A-Za-z_][A-Za-z0-9_]*(?=\s*\())/g;
const CLASSES = ['str', 'num', 'kw', 'root', 'op', 'fn'];

export function highlight(text: string) {
  const out: { text: string; cls?: string }[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const at = m.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at) });
    const group = m.slice(1).findIndex((g) => g !== undefined);
    out.push({ text: m[0], cls: CLASSES[group] });
    last = at + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

export function ExprInput({ id, value, onChange, invalid, label }: { id: string; value: string; onChange: (v: string) => void; invalid?: boolean; label: string }) {
  return (
    <div className={`expr${invalid ? ' invalid' : ''}`}>
      <pre aria-hidden="true">
        {highlight(value).map((t, i) => (
          <Fragment key={i}>{t.cls ? <span className={`tok-${t.cls}`}>{t.text}</span> : t.text}</Fragment>
        ))}
        {'\n'}
      </pre>
      <textarea id={id} aria-label={label} spellCheck={false} value={value} rows={Math.max(1, value.split('\n').length)} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}
