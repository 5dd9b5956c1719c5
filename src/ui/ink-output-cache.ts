/**
 * Ink builds each frame in a fresh `Output` (ink/build/output.js), and each `Output` starts with
 * empty caches: every line written is tokenized again (Intl.Segmenter grapheme by grapheme, then
 * one styled-cell object per character) and every character's width measured again, on every
 * frame, although from one frame to the next most lines of the lab screen are the same text.
 * That tokenizing was the largest single cost of a frame (profile of bench/ui.ts's in-process
 * frames). Ink keeps its other text caches (measure-text.js, wrap-text.js) for the process's
 * life; this gives `Output` the same: one set of caches shared by every frame, dropped whole when
 * it grows large, so a long run with ever-new counter text stays bounded.
 *
 * `Output` is not exported by Ink, so it is reached by its file next to Ink's entry point. The
 * cached values are read-only to Ink (it places the cached cell objects into the frame's grid and
 * creates new ones for the cells after a wide character), which is what makes sharing them safe.
 * If a later Ink moves or reshapes `Output`, this does nothing and frames cost what they did.
 */

/**
 * Entries (lines + widths) the shared caches may hold before they are started afresh. A frame of
 * the lab screen writes ~40 lines and ~150 distinct characters, a few of them new each frame; a
 * cached line holds one small object per character (~4 KiB for a long line), so this keeps the
 * caches near 10 MiB at most and restarts them every few hundred frames.
 */
const MAX_ENTRIES = 3_000;

interface Caches {
  widths: Map<string, unknown>;
  blockWidths: Map<string, unknown>;
  styledChars: Map<string, unknown>;
}

interface OutputLike {
  caches: Caches;
  get(): unknown;
}

let installed: Promise<boolean> | undefined;

function isCaches(x: unknown): x is Caches {
  const c = x as Partial<Caches> | undefined;
  return c?.widths instanceof Map && c.blockWidths instanceof Map && c.styledChars instanceof Map;
}

/**
 * Make every Ink frame in this process share one set of `Output` caches. Idempotent; resolves to
 * whether it applied (false: this Ink has no such `Output`, frames are built as before).
 */
export function shareInkOutputCaches(): Promise<boolean> {
  installed ??= (async () => {
    try {
      const url = new URL('./output.js', import.meta.resolve('ink'));
      const mod = (await import(url.href)) as { default?: new (o: { width: number; height: number }) => OutputLike };
      const Output = mod.default;
      if (typeof Output !== 'function') return false;
      const probe = new Output({ width: 0, height: 0 });
      if (!isCaches(probe.caches) || typeof Output.prototype.get !== 'function') return false;
      const Caches = probe.caches.constructor as new () => Caches;
      let shared = new Caches();
      const get = Output.prototype.get;
      Output.prototype.get = function (this: OutputLike) {
        if (shared.widths.size + shared.blockWidths.size + shared.styledChars.size > MAX_ENTRIES) shared = new Caches();
        this.caches = shared;
        return get.call(this);
      };
      return true;
    } catch {
      return false;
    }
  })();
  return installed;
}
