/**
 * Fills the file system holding `dir` to its last block with one file, for the storage-fault tests on a
 * small tmpfs. Written with dd until the disk refuses more, so a process writing to the same disk
 * meanwhile cannot make it fail (a size taken from statfs first can be stale by the time it is used).
 * Returns the file's path: removing it gives the space back.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function fillDisk(dir: string, name = 'filler'): string {
  const file = join(dir, name);
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k'], { stdio: 'pipe' });
  } catch {
    // dd stops with "No space left on device": that is the point
  }
  try {
    // The last partial block.
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=512', 'oflag=append', 'conv=notrunc'], {
      stdio: 'pipe',
    });
  } catch {
    // full
  }
  return file;
}
