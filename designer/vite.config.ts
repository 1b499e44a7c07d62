import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// The built files go to dist/, which the engine embeds (engine/src/designer.rs) and which
// is committed: `cargo build` needs no Node.js, and .ci/run rebuilds it and fails when it
// differs from its sources. `npm run dev` serves the page with the API proxied to a local
// engine (`parcours serve --examples`).
export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1000 },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  test: { include: ['src/**/*.test.ts'] },
});
