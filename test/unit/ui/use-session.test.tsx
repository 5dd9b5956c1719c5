import { Text } from 'ink';
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import type { LabSessionApi } from '../../../src/types.js';
import { renderCounter, resetRenderCounter, SampledStore, useSampledSession } from '../../../src/ui/use-session.js';
import { FakeSession } from '../../helpers/fake-session.js';
import { plain, waitFor, waitForText } from './helpers.js';

function Probe({ session, interval }: { session: LabSessionApi; interval?: number }) {
  const state = useSampledSession(session, interval);
  return <Text>t={state.snapshot?.t ?? -1}</Text>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('useSampledSession', () => {
  it('renders a bounded number of frames when the store notifies 1000 times in 100 ms', async () => {
    const session = new FakeSession();
    resetRenderCounter();
    const { lastFrame, unmount } = render(<Probe session={session} />);
    await waitForText(lastFrame, 't=12300');
    const before = renderCounter.count;
    const start = performance.now();
    let t = 0;
    for (let tick = 0; tick < 100; tick++) {
      for (let i = 0; i < 10; i++) session.setSnapshot({ t: ++t });
      await sleep(1);
    }
    const elapsed = performance.now() - start;
    expect(t).toBe(1000);
    // The last state always arrives, within one interval.
    await waitForText(lastFrame, 't=1000');
    const renders = renderCounter.count - before;
    // ~12 per second: at most one per 83 ms over the burst, the leading one, and the trailing one.
    const bound = Math.ceil((elapsed + 100) / 83) + 2;
    expect(renders).toBeGreaterThanOrEqual(1);
    expect(renders).toBeLessThanOrEqual(bound);
    expect(renders).toBeLessThan(20);
    expect(plain(lastFrame())).toBe('t=1000');
    unmount();
    expect(session.listenerCount).toBe(0);
  });

  it('shows the first change after a quiet period at once (no waiting for a tick)', async () => {
    const session = new FakeSession();
    const { lastFrame, unmount } = render(<Probe session={session} interval={10_000} />);
    await waitForText(lastFrame, 't=12300');
    session.setSnapshot({ t: 1 });
    await waitForText(lastFrame, 't=1', 200);
    unmount();
  });
});

describe('SampledStore', () => {
  it('emits leading, then at most once per interval with the latest state, and stops its timer when idle', async () => {
    let state = 0;
    const listeners = new Set<() => void>();
    const source = { subscribe: (l: () => void) => (listeners.add(l), () => listeners.delete(l)), getState: () => state };
    const store = new SampledStore(source, 50);
    const seen: number[] = [];
    const unsub = store.subscribe(() => seen.push(store.getSnapshot()));
    const bump = () => {
      state++;
      for (const l of listeners) l();
    };
    bump();
    expect(seen).toEqual([1]);
    bump();
    bump();
    bump();
    expect(seen).toEqual([1]);
    await waitFor(() => seen.length === 2, 'trailing sample');
    expect(seen).toEqual([1, 4]);
    // Notifications without a change emit nothing.
    for (const l of listeners) l();
    await sleep(80);
    expect(seen).toEqual([1, 4]);
    unsub();
    expect(listeners.size).toBe(0);
  });
});
