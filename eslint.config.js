// Flat ESLint config. Besides the recommended sets, it enforces where code may run (see shared STYLE.md):
// core/relay are plain Node (no electron), the preload and renderer get no Node built-ins.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

import svelteConfig from './svelte.config.js';

const nodeBuiltins = builtinModules.filter((name) => !name.startsWith('_'));

/** `no-restricted-imports` only sees import/export declarations; this also catches require() and import(). */
const noDynamicLoadOf = (pattern, message) => [
  {
    selector: `CallExpression[callee.name='require'][arguments.0.value=${pattern}]`,
    message,
  },
  { selector: `ImportExpression[source.value=${pattern}]`, message },
  {
    selector: `TSImportEqualsDeclaration > TSExternalModuleReference[expression.value=${pattern}]`,
    message,
  },
];

const NO_ELECTRON =
  'core/ and relay/ run under plain Node: take an adapter (KeyStore, …) instead of importing electron.';
const NO_NODE = 'This code runs sandboxed without Node: ask the main process over the preload bridge.';

export default defineConfig([
  globalIgnores(['out/', 'dist/', 'node_modules/', 'test-results/', 'coverage/', 'relay-data/', '.vite/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  svelte.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['**/*.{js,ts,mjs,cjs,mts,cts}'],
    ignores: ['src-renderer/**'],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['src-renderer/**/*.{ts,svelte}'],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts', '**/*.svelte.js'],
    languageOptions: {
      parserOptions: {
        extraFileExtensions: ['.svelte'],
        parser: tseslint.parser,
        svelteConfig,
      },
    },
  },
  {
    files: ['src-main/core/**', 'src-main/relay/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'electron', message: NO_ELECTRON }],
          patterns: [{ regex: '^electron/', message: NO_ELECTRON }],
        },
      ],
      'no-restricted-syntax': ['error', ...noDynamicLoadOf('/^electron(\\u002F|$)/', NO_ELECTRON)],
    },
  },
  {
    files: ['src-preload/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: NO_NODE })),
          patterns: [{ regex: '^node:', message: NO_NODE }],
        },
      ],
    },
  },
  {
    files: ['src-renderer/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['electron', ...nodeBuiltins].map((name) => ({ name, message: NO_NODE })),
          patterns: [{ regex: '^(node:|electron/)', message: NO_NODE }],
        },
      ],
    },
  },
]);
