import { describe, expect, it } from 'vitest';
import { blank, fieldsOf, shapeOf, type Schema } from './schema';

// Shaped as schemars writes the journey format (GET /v1/schema/journey).
const root: Schema = {
  $defs: {
    Properties: {
      type: 'object',
      properties: {
        reentrance: { $ref: '#/$defs/ReentranceDef', default: { mode: 'after', wait: 'PT5M' } },
        timeout: { type: ['string', 'null'], description: 'Longest life (ISO-8601 duration).' },
        use_profile_time_zone: { type: 'boolean', default: false },
        exit: { type: 'array', items: { $ref: '#/$defs/ExitDef' } },
        capping: { type: 'array', items: { type: 'string' } },
      },
    },
    ReentranceDef: { type: 'object', properties: { mode: { $ref: '#/$defs/ReentranceMode' }, wait: { type: ['string', 'null'] } }, required: ['mode'] },
    ReentranceMode: { oneOf: [{ type: 'string', const: 'never' }, { type: 'string', const: 'always' }, { type: 'string', const: 'after' }] },
    ExitDef: {
      oneOf: [
        { type: 'object', properties: { type: { type: 'string', const: 'event' }, event: { type: 'string' } }, required: ['type', 'event'] },
        { type: 'object', properties: { type: { type: 'string', const: 'audience_exit' }, audience: { type: 'string' } }, required: ['type', 'audience'] },
      ],
    },
    ActionDef: {
      type: 'object',
      properties: {
        action: { type: 'string' },
        params: { type: 'object', additionalProperties: true, default: {} },
        retry: { anyOf: [{ $ref: '#/$defs/RetryDef' }, { type: 'null' }] },
        set: { type: 'object', additionalProperties: { type: 'string' } },
      },
      required: ['action'],
    },
    RetryDef: { type: 'object', properties: { max_attempts: { type: 'integer' }, backoff: { type: ['string', 'null'] } }, required: ['max_attempts'] },
  },
};

const field = (def: string, name: string) => fieldsOf(root, { $ref: `#/$defs/${def}` }).find((f) => f.name === name)!.schema;

describe('fields are edited by the shape of their schema', () => {
  it.each([
    ['Properties', 'reentrance', 'object'],
    ['Properties', 'timeout', 'string'],
    ['Properties', 'use_profile_time_zone', 'boolean'],
    ['Properties', 'exit', 'list'],
    ['Properties', 'capping', 'list'],
    ['ActionDef', 'params', 'map'],
    ['ActionDef', 'retry', 'object'],
    ['ActionDef', 'set', 'map'],
    ['ReentranceDef', 'mode', 'choice'],
  ])('%s.%s is a %s', (def, name, kind) => {
    expect(shapeOf(root, field(def, name)).kind).toBe(kind);
  });

  it('a list of tagged objects is a list of unions', () => {
    const exit = shapeOf(root, field('Properties', 'exit'));
    expect(exit.kind).toBe('list');
    const item = shapeOf(root, (exit as { item: Schema }).item);
    expect(item.kind).toBe('union');
    expect([...(item as { variants: Map<string, Schema> }).variants.keys()]).toEqual(['event', 'audience_exit']);
  });

  it('a new value has its default, or its required fields', () => {
    expect(blank(root, field('Properties', 'reentrance'))).toEqual({ mode: 'after', wait: 'PT5M' });
    expect(blank(root, field('ActionDef', 'retry'))).toEqual({ max_attempts: 0 });
    expect(blank(root, { $ref: '#/$defs/ExitDef' })).toEqual({ type: 'event', event: '' });
    expect(blank(root, field('ActionDef', 'params'))).toEqual({});
  });
});
