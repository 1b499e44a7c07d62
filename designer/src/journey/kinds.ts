// Node kinds: how each looks on the canvas, where its outgoing connections are stored in
// the definition (its "slots"), and what a new node of the kind starts with.

import type { EntryDef, Json, JsonObject, NodeDef } from './types';

export interface Kind {
  kind: string;
  title: string;
  /** One-letter glyph drawn in the node's badge. */
  glyph: string;
  color: string;
  /** What a node dropped from the palette starts with (valid in shape). */
  template: () => NodeDef;
}

export const KINDS: Kind[] = [
  { kind: 'condition', title: 'Condition', glyph: '?', color: '#b45309', template: () => ({ type: 'condition', branches: [{ label: 'Yes', when: 'true' }] }) },
  { kind: 'split', title: 'Split', glyph: '%', color: '#7c3aed', template: () => ({ type: 'split', branches: [{ label: 'A', weight: 50 }, { label: 'B', weight: 50 }] }) },
  { kind: 'wait', title: 'Wait', glyph: '◷', color: '#0369a1', template: () => ({ type: 'wait', duration: 'P1D' }) },
  { kind: 'reaction', title: 'Reaction', glyph: '⚡', color: '#be185d', template: () => ({ type: 'reaction', events: [{ event: 'purchase' }], timeout: 'P3D' }) },
  { kind: 'action', title: 'Action', glyph: '▶', color: '#15803d', template: () => ({ type: 'action', action: 'log', params: {} }) },
  { kind: 'message', title: 'Message', glyph: '✉', color: '#0e7490', template: () => ({ type: 'message', template: 'welcome' }) },
  { kind: 'update_profile', title: 'Update profile', glyph: '✎', color: '#4d7c0f', template: () => ({ type: 'update_profile', set: {} }) },
  { kind: 'jump', title: 'Jump', glyph: '↪', color: '#475569', template: () => ({ type: 'jump', journey: 'other_journey' }) },
  { kind: 'end', title: 'End', glyph: '■', color: '#1f2937', template: () => ({ type: 'end' }) },
];

export function kindOf(type: string): Kind {
  return KINDS.find((k) => k.kind === type) ?? { kind: type, title: type, glyph: '•', color: '#64748b', template: () => ({ type }) };
}

/** Where a node keeps one of its outgoing connections. */
export interface Slot {
  /** The handle id on the canvas: `next`, `otherwise`, `branches.0`... */
  handle: string;
  /** The label drawn on the edge. */
  label: string;
  /** The path of the target node id inside the node's definition. */
  path: (string | number)[];
}

function text(value: Json | undefined): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function list(value: Json | undefined): JsonObject[] {
  return Array.isArray(value) ? (value.filter((v) => v !== null && typeof v === 'object' && !Array.isArray(v)) as JsonObject[]) : [];
}

export function slotsOf(node: NodeDef): Slot[] {
  const errorSlot: Slot = { handle: 'on_error', label: 'on error', path: ['on_error'] };
  const next: Slot = { handle: 'next', label: '', path: ['next'] };
  switch (node.type) {
    case 'condition':
      return [
        ...list(node.branches).map((b, i) => ({ handle: `branches.${i}`, label: text(b.label) ?? `branch ${i + 1}`, path: ['branches', i, 'next'] })),
        { handle: 'otherwise', label: 'otherwise', path: ['otherwise'] },
        errorSlot,
      ];
    case 'split':
      return list(node.branches).map((b, i) => ({
        handle: `branches.${i}`,
        label: `${text(b.label) ?? `branch ${i + 1}`}${typeof b.weight === 'number' ? ` · ${b.weight}` : ''}`,
        path: ['branches', i, 'next'],
      }));
    case 'reaction':
      return [
        ...list(node.events).map((e, i) => ({ handle: `events.${i}`, label: text(e.label) ?? text(e.event) ?? `event ${i + 1}`, path: ['events', i, 'next'] })),
        { handle: 'on_timeout', label: 'timeout', path: ['on_timeout'] },
      ];
    case 'end':
      return [];
    case 'wait':
    case 'action':
    case 'message':
    case 'update_profile':
    case 'jump':
      return [next, errorSlot];
    default:
      return [next];
  }
}

/** A short line saying what the node does (`P2D`, `log`, `2 branches`). */
export function summaryOf(node: NodeDef): string {
  switch (node.type) {
    case 'condition':
      return `${list(node.branches).length} branch${list(node.branches).length === 1 ? '' : 'es'} + otherwise`;
    case 'split':
      return list(node.branches).map((b) => `${text(b.label) ?? '?'} ${b.weight ?? ''}`).join(' / ');
    case 'wait':
      return text(node.duration) ?? (text(node.until) ? `until ${node.until}` : text(node.until_expr) ? `until ${node.until_expr}` : '');
    case 'reaction':
      return `${list(node.events).map((e) => text(e.event)).join(', ')}${text(node.timeout) ? ` within ${node.timeout}` : ''}`;
    case 'action':
      return text(node.action) ?? '';
    case 'message':
      return `${text(node.template) ?? '?'}${text(node.category) === 'transactional' ? ' · transactional' : ''}`;
    case 'update_profile':
      return Object.keys((node.set as JsonObject | undefined) ?? {}).join(', ');
    case 'jump':
      return `to ${text(node.journey) ?? '?'}`;
    default:
      return '';
  }
}

/** What the entry node says: the event, the audience and schedule. */
export function entrySummary(entry: EntryDef): { title: string; detail: string } {
  const schedule = entry.schedule as JsonObject | undefined;
  switch (entry.type) {
    case 'event':
      return { title: `Event: ${entry.event ?? '?'}`, detail: text(entry.when) ? `when ${entry.when}` : 'every event of this type' };
    case 'read_audience': {
      const when = schedule ? (schedule.type === 'cron' ? `cron ${schedule.expression}` : `${schedule.type} ${schedule.at ?? ''}${Array.isArray(schedule.days) ? ` on ${schedule.days.join(', ')}` : ''}`) : '';
      return { title: `Read audience: ${entry.audience ?? '?'}`, detail: when.trim() };
    }
    case 'audience_qualification':
      return { title: `Audience: ${entry.audience ?? '?'}`, detail: `on ${entry.on ?? 'enter'}` };
    case 'business_event':
      return { title: `Business event: ${entry.event ?? '?'}`, detail: `for audience ${entry.audience ?? '?'}` };
    default:
      return { title: `Entry: ${entry.type}`, detail: '' };
  }
}
