// A hostile action for tests, in JavaScript: `{"mode": ...}` picks the misbehaviour.
let calls = 0;

export async function invoke(ctx, params) {
  const { mode } = JSON.parse(params);
  if (mode === 'loop') {
    for (;;) {}
  }
  if (mode === 'memory') {
    const hog = [];
    for (let i = 0; i < 1024; i++) hog.push(new Uint8Array(1 << 20).fill(1));
    return JSON.stringify({ allocated: hog.length });
  }
  if (mode === 'http') {
    try {
      await fetch('http://denied.example.net/secrets');
    } catch (e) {
      throw { tag: 'permanent', val: `request failed: ${e}` };
    }
    return JSON.stringify({ reached: true });
  }
  if (mode === 'print') {
    console.log('printed to stdout');
    return JSON.stringify({ printed: true });
  }
  if (mode === 'count') {
    calls += 1;
    return JSON.stringify({ calls });
  }
  return JSON.stringify({ ok: true });
}
