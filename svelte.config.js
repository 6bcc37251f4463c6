/**
 * Svelte options shared by the Vite plugin (passed as `configFile` in electron.vite.config.ts, since the
 * renderer root is src-renderer), svelte-check, eslint-plugin-svelte and prettier-plugin-svelte.
 * `<script lang="ts">` needs no preprocessor in Svelte 5 (type annotations only, no enums).
 */
/** @type {import('@sveltejs/vite-plugin-svelte').SvelteConfig} */
export default {
  compilerOptions: {
    runes: true,
  },
};
