/**
 * Electron adapter: the app icon (generated PNGs in `icon-png.ts`) as a NativeImage for the tray and
 * the window.
 */
import { nativeImage, type NativeImage } from 'electron';

import { ICON_PNG_BASE64 } from './icon-png.js';

const png = (size: keyof typeof ICON_PNG_BASE64): Buffer => Buffer.from(ICON_PNG_BASE64[size], 'base64');

/** The icon at `size` logical pixels, with a 2× representation for high-density screens. */
export function appIcon(size: 16 | 32): NativeImage {
  const image = nativeImage.createFromBuffer(png(size), { scaleFactor: 1 });
  image.addRepresentation({ scaleFactor: 2, buffer: png(size === 16 ? 32 : 64) });
  return image;
}
