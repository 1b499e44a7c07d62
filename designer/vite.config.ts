import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// The built files go to dist/, which the engine embeds (engine/src/designer.rs) and which
// is committed: `cargo build` needs no Node.js, and .ci/run rebuilds it and fails when it
// differs from its sources. `npm run dev` serves the page with the API proxied to a local
// engine (`parcours serve --examples`).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Libraries in chunks of their own: an engine upgrade that changes only the app's
    // code leaves their hashed names, and the browser's cached copies, as they were.
    // The canvas (React Flow, dagre, yaml) loads only when a journey is opened.
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
            { name: 'canvas', test: /node_modules[\\/](@xyflow|@dagrejs|d3-[a-z]+|classcat|zustand|use-sync-external-store)[\\/]/ },
            { name: 'yaml', test: /node_modules[\\/]yaml[\\/]/ },
          ],
        },
      },
    },
  },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  test: { include: ['src/**/*.test.ts'] },
});
