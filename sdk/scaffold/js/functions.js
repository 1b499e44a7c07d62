// Expression functions: `<name>::double(21)` in a condition or a parameter.

function fail(message) {
  throw { tag: 'invalid-input', val: message };
}

export function describe() {
  return [{ name: 'double', params: ['int'], returns: 'int', description: 'twice its argument' }];
}

export function call(name, args) {
  const values = JSON.parse(args);
  if (name !== 'double') fail(`no function ${name}`);
  if (values.length !== 1 || !Number.isInteger(values[0])) fail('double: takes one integer');
  return JSON.stringify(values[0] * 2);
}
