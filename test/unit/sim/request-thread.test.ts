/**
 * x-preempt-thread-fifo's `chrt`: a refusal is a reason to log, never a throw (the request
 * thread then runs at normal priority; test/integration/sim/preempt-thread.test.ts checks the VM
 * logs it and goes on).
 */
import { describe, expect, it } from 'vitest';
import { setFifo } from '../../../src/sim/request-thread.js';

describe('setFifo', () => {
  it('names a missing chrt', async () => {
    expect(await setFifo(process.pid, 'postcopy-lab-no-such-chrt')).toBe('postcopy-lab-no-such-chrt is not installed (util-linux)');
  });

  it("passes chrt's own refusal on (here: no such thread)", async () => {
    const why = await setFifo(2 ** 30);
    expect(why).toMatch(/\S/);
  });
});
