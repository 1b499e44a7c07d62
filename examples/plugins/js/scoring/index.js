// `scoring`: lead-scoring functions for conditions, called from rhai as
// `scoring::lead_score(profile)` or `scoring::tier_for(amount)`.

const FUNCTIONS = {
  lead_score: {
    params: ['map'],
    returns: 'int',
    description:
      'A 0-100 score from a profile: +40 with an email, +30 when country is set, +1 per order up to 30.',
    run([profile]) {
      if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
        throw { tag: 'invalid-input', val: `lead_score expects a map, not ${JSON.stringify(profile)}` };
      }
      let score = 0;
      if (typeof profile.email === 'string' && profile.email.includes('@')) score += 40;
      if (typeof profile.country === 'string' && profile.country.length > 0) score += 30;
      const orders = Number(profile.orders ?? 0);
      if (Number.isFinite(orders)) score += Math.min(30, Math.max(0, Math.trunc(orders)));
      return score;
    },
  },
  tier_for: {
    params: ['float'],
    returns: 'string',
    description: 'The loyalty tier of a yearly spend: bronze, silver (>= 500) or gold (>= 2000).',
    run([amount]) {
      if (typeof amount !== 'number') {
        throw { tag: 'invalid-input', val: `tier_for expects a number, not ${JSON.stringify(amount)}` };
      }
      return amount >= 2000 ? 'gold' : amount >= 500 ? 'silver' : 'bronze';
    },
  },
};

export function describe() {
  return Object.entries(FUNCTIONS).map(([name, f]) => ({
    name,
    params: f.params,
    returns: f.returns,
    description: f.description,
  }));
}

export function call(name, args) {
  const f = FUNCTIONS[name];
  if (!f) throw { tag: 'invalid-input', val: `no function ${name}` };
  const list = JSON.parse(args);
  if (!Array.isArray(list) || list.length !== f.params.length) {
    throw { tag: 'invalid-input', val: `${name} takes ${f.params.length} argument(s)` };
  }
  return JSON.stringify(f.run(list));
}
