// The journey format as the designer handles it: plain JSON, exactly as the engine's
// API returns and accepts it (GET /v1/journeys/{id} `draft`, PUT /v1/journeys/{id}).
// The engine's JSON Schema (GET /v1/schema/journey) is the reference for every field;
// these types only name what the canvas reads.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface NodeDef extends JsonObject {
  type: string;
}

export interface EntryDef extends JsonObject {
  type: string;
}

export interface JourneyDef {
  id?: string;
  name?: string;
  description?: string;
  entry: EntryDef;
  start: string;
  nodes: Record<string, NodeDef>;
  properties?: JsonObject;
}

/** A located problem, as the engine reports it: `nodes.wait_2d.duration`. */
export interface Problem {
  path: string;
  message: string;
}
