/** Renderer entry: mounts the Svelte app. Runs in the sandboxed, context-isolated page. */
import { mount } from 'svelte';

import './app.css';
import App from './App.svelte';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');

mount(App, { target });
