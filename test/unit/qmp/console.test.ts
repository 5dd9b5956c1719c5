import { describe, expect, it } from 'vitest';
import { argumentsLike, commandSide, formatError, formatReply, hintCommand, parseConsoleLine, settingLineSide, settingSideNote, unknownCommandNote } from '../../../src/qmp/console.js';
import { QMP_COMMANDS } from '../../../src/ui/qmp-commands.js';
import { QmpError } from '../../../src/qmp/error.js';

describe('parseConsoleLine', () => {
  it('says a shell command copied from a lab text is one, and how the lab does it, not what QMP arguments would look like', () => {
    expect(() => parseConsoleLine('postcopy-lab recovery-source FILE --qmp SOCK --expect-digest HEX')).toThrow(
      "postcopy-lab is a shell command, not QMP: this console sends QMP commands to the VM. In a lab, s (show me) runs a step's VM actions for you, the recovery source too; outside one, run it in a terminal.",
    );
    expect(() => parseConsoleLine('tc qdisc show')).toThrow(/^tc is a shell command, not QMP: .*Run it in a terminal\.$/);
  });
  it('parses the short form without arguments', () => {
    expect(parseConsoleLine('query-migrate')).toEqual({ execute: 'query-migrate', oob: false });
    expect(parseConsoleLine('  migrate_cancel  ')).toEqual({ execute: 'migrate_cancel', oob: false });
  });

  it('parses the short form with a JSON object of arguments', () => {
    expect(parseConsoleLine('migrate-recover {"uri": "tcp:127.0.0.1:4445"}')).toEqual({
      execute: 'migrate-recover',
      arguments: { uri: 'tcp:127.0.0.1:4445' },
      oob: false,
    });
    expect(parseConsoleLine('migrate{"uri":"tcp:h:1","resume":true}')).toEqual({
      execute: 'migrate',
      arguments: { uri: 'tcp:h:1', resume: true },
      oob: false,
    });
  });

  it('parses the short form out-of-band', () => {
    expect(parseConsoleLine('exec-oob migrate-pause')).toEqual({ execute: 'migrate-pause', oob: true });
  });

  it('parses full QMP requests, execute and exec-oob, ignoring id', () => {
    expect(parseConsoleLine('{"execute": "query-status"}')).toEqual({ execute: 'query-status', oob: false });
    expect(parseConsoleLine('{"exec-oob": "migrate-pause", "id": 3}')).toEqual({ execute: 'migrate-pause', oob: true });
    expect(parseConsoleLine('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "postcopy-ram", "state": true}]}}')).toEqual({
      execute: 'migrate-set-capabilities',
      arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] },
      oob: false,
    });
  });

  const bad: [string, RegExp][] = [
    ['', /Empty command.*query-migrate/],
    ['   ', /Empty command/],
    ['migrate tcp:127.0.0.1:4444', /Arguments must be a JSON object, not "tcp:127.0.0.1:4444".*migrate \{"uri"/],
    // HMP's name gets QMP's in the example.
    ['migrate_incoming tcp:0:4444', /e\.g\. migrate-incoming \{"uri": "tcp:0:4444"\} \(QMP takes named arguments, unlike HMP's positional ones, and spells it migrate-incoming\)/],
    ['migrate-recover {"uri": tcp}', /arguments of migrate-recover is not valid JSON/],
    ['migrate-recover {"uri": "x"} trailing', /not valid JSON/],
    ['{"execute": "query-status"', /The request is not valid JSON/],
    ['{"arguments": {}}', /lacks "execute"/],
    ['{"execute": "a", "exec-oob": "b"}', /either "execute" or "exec-oob", not both/],
    ['{"execute": 42}', /"execute" must be a command name string/],
    ['{"execute": "migrate", "arguments": ["tcp:x"]}', /"arguments" must be a JSON object/],
    ['{"execute": "migrate", "argument": {}}', /Unexpected member "argument"/],
    ['"query-status"', /is not a command name/],
    ['exec-oob', /exec-oob needs a command name/],
  ];
  for (const [line, msg] of bad) {
    it(`rejects ${JSON.stringify(line)} saying what is wrong`, () => {
      expect(() => parseConsoleLine(line)).toThrow(msg);
    });
  }

  // Found playing link-cut-recovery: the example carried a made-up port, a learner copied it,
  // the destination listened where the link does not forward, and the migration failed.
  it('builds the example of an HMP-style mistake from what was typed, never a made-up address', () => {
    expect(() => parseConsoleLine('migrate-incoming uri=tcp:127.0.0.1:4444')).toThrow(
      'e.g. migrate-incoming {"uri": "tcp:127.0.0.1:4444"} (QMP takes named arguments',
    );
    expect(() => parseConsoleLine('migrate tcp:10.0.0.2:5000')).toThrow('e.g. migrate {"uri": "tcp:10.0.0.2:5000"}');
    for (const line of ['migrate-incoming uri=tcp:127.0.0.1:4444', 'migrate x y', 'foo bar', '', '{"execute": "a", "arguments": 1}']) {
      let message = '';
      try {
        parseConsoleLine(line);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).not.toMatch(/4445/);
    }
  });

  it('turns key=value words into the JSON object they stand for, with their types', () => {
    expect(argumentsLike('uri=tcp:h:1 resume=true')).toBe('{"uri": "tcp:h:1", "resume": true}');
    expect(argumentsLike('max-bandwidth=33554432')).toBe('{"max-bandwidth": 33554432}');
    expect(argumentsLike('tcp:h:1')).toBe('{"uri": "tcp:h:1"}');
    expect(argumentsLike('a b')).toBe('{"name": value, ...}');
  });
});

describe('formatReply / formatError', () => {
  it('prints small replies as compact JSON and big ones indented', () => {
    expect(formatReply({ status: 'running', running: true })).toBe('{"status":"running","running":true}');
    expect(formatReply(undefined)).toBe('{}');
    const big = { ram: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`counter-${i}`, i * 1000])) };
    const text = formatReply(big);
    expect(text.split('\n').length).toBeGreaterThan(10);
    expect(JSON.parse(text)).toEqual(big);
    // A list of small objects: one row each (query-migrate-capabilities took ~110 rows).
    const caps = Array.from({ length: 20 }, (_, i) => ({ capability: `cap-${i}`, state: i % 2 === 0 }));
    const rows = formatReply(caps, { width: 80 }).split('\n');
    expect(rows).toHaveLength(22);
    expect(rows[1]).toBe('  {"capability":"cap-0","state":true},');
    expect(JSON.parse(rows.join('\n'))).toEqual(caps);
    // Nested: a member that fits its row stays whole, one that does not opens up.
    const nested = { status: 'active', ram: { total: 1, remaining: 2, pages: Array.from({ length: 30 }, (_, i) => i) }, blob: 'x'.repeat(90) };
    const out = formatReply(nested, { width: 60 });
    expect(JSON.parse(out)).toEqual(nested);
    expect(out).toContain('\n  "status": "active",\n');
    expect(out).toContain('\n    "total": 1,\n');
  });

  it('prints errors HMP-style with the QMP class', () => {
    expect(formatError(new QmpError('CommandNotFound', 'The command foo has not been found'))).toBe(
      'Error: The command foo has not been found (CommandNotFound)',
    );
    expect(formatError(new Error('QMP connection to /x closed'))).toBe('Error: QMP connection to /x closed');
  });
});

describe('hintCommand', () => {
  const cmd = (hint: string) => hintCommand(hint, QMP_COMMANDS);
  it('takes the first command with its JSON arguments and the side named before it', () => {
    expect(cmd('Press u, then on the destination: migrate-recover {"uri": "tcp:127.0.0.1:4445"}')).toEqual({
      line: 'migrate-recover {"uri": "tcp:127.0.0.1:4445"}',
      side: 'destination',
    });
    expect(cmd('On the source: migrate {"uri": "tcp:127.0.0.1:4444"}, then migrate-start-postcopy')).toEqual({
      line: 'migrate {"uri": "tcp:127.0.0.1:4444"}',
      side: 'source',
    });
    expect(cmd('On the source: migrate-start-postcopy')).toEqual({ line: 'migrate-start-postcopy', side: 'source' });
  });

  it('reads a side named after the command, but not inside a direction', () => {
    expect(cmd('Blackhole destination-to-source, then migrate-recover {"uri": "tcp:1.2.3.4:5"} on the destination')).toEqual({
      line: 'migrate-recover {"uri": "tcp:1.2.3.4:5"}',
      side: 'destination',
    });
    expect(cmd('migrate {"uri": "tcp:h:1", "resume": true} on the source')).toEqual({ line: 'migrate {"uri": "tcp:h:1", "resume": true}', side: 'source' });
  });

  it('takes a full QMP request, braces inside strings included, and leaves the side open when none is named', () => {
    expect(cmd('Type {"exec-oob": "migrate-pause"} on each side, or press p.')).toEqual({ line: '{"exec-oob": "migrate-pause"}', side: undefined });
    expect(cmd('Send {"execute": "x", "arguments": {"a": "}"}} now')?.line).toBe('{"execute": "x", "arguments": {"a": "}"}}');
  });

  it("takes a libvirt console line up to where the prose resumes, with the hint's side", () => {
    expect(cmd('In the console (:), on the source: virsh migrate --live --postcopy --bandwidth 1 pcl-guest qemu+tcp://10.7.0.2:16509/system')).toEqual({
      line: 'virsh migrate --live --postcopy --bandwidth 1 pcl-guest qemu+tcp://10.7.0.2:16509/system',
      side: 'source',
    });
    expect(cmd('On the source: virsh migrate --postcopy-resume --p2p pcl-guest qemu+tcp://h:1/system: read its refusal in the log.')?.line).toBe(
      'virsh migrate --postcopy-resume --p2p pcl-guest qemu+tcp://h:1/system',
    );
    expect(cmd('Then on the source: virsh domjobabort --postcopy pcl-guest (or migrate-pause, which the backend maps to it).')).toEqual({ line: 'virsh domjobabort --postcopy pcl-guest', side: 'source' });
    expect(cmd('virsh suspend pcl-guest on the destination shows the lock, after 30 s.')).toEqual({ line: 'virsh suspend pcl-guest', side: 'destination' });
    expect(cmd('In the console, on the destination: x-extra-monitor exec-oob migrate-pause')).toEqual({ line: 'x-extra-monitor exec-oob migrate-pause', side: 'destination' });
    expect(cmd('Press b (blackhole), then compare virsh domstate --reason pcl-guest on each side.')?.line).toBe('virsh domstate --reason pcl-guest');
    // A QMP command named first still comes first.
    expect(cmd('On the source: migrate-start-postcopy, or in the console: virsh migrate-postcopy pcl-guest')?.line).toBe('migrate-start-postcopy');
  });

  it('finds nothing in a hint without a command', () => {
    expect(cmd('Press b, or apply a blackhole to the link.')).toBeNull();
    expect(cmd('Then wait: the point is that nothing happens.')).toBeNull();
    // "migrated" is not the command migrate.
    expect(cmd('The pages migrated already stay.')).toBeNull();
    // A command that needs arguments, named without them, is not one to send as it stands.
    expect(cmd("On the source: migrate, with the link's address for the destination.")).toBeNull();
    expect(cmd('migrate-incoming on the destination, migrate and migrate-start-postcopy on the source, then c.')).toEqual({ line: 'migrate-start-postcopy', side: 'source' });
  });
});

describe('unknownCommandNote', () => {
  it("names the console's nearest commands for QEMU's 'has not been found' (QEMU mixes _ and - in its names)", () => {
    expect(unknownCommandNote('The command migrate-cancel has not been found')).toBe('did you mean migrate_cancel?');
    expect(unknownCommandNote('Error: The command migrate-start-postcpy has not been found (CommandNotFound)')).toBe('did you mean migrate-start-postcopy?');
    expect(unknownCommandNote('The command frobnicate has not been found')).toBeNull();
    expect(unknownCommandNote("Parameter 'uri' is missing")).toBeNull();
  });
});

describe('settingSideNote', () => {
  const caps = (...names: string[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
  it('names the side a one-sided setting acts on when another side took it', () => {
    expect(settingSideNote('destination', 'migrate-set-capabilities', caps('auto-converge'))).toBe(
      'auto-converge acts on the source: the destination takes it and does nothing with it',
    );
    expect(settingSideNote('destination', 'migrate-set-parameters', { 'cpu-throttle-initial': 20, 'max-cpu-throttle': 99 })).toBe(
      'cpu-throttle-initial, max-cpu-throttle act on the source: the destination takes them and does nothing with them',
    );
    expect(settingSideNote('source', 'migrate-set-capabilities', caps('postcopy-blocktime'))).toBe(
      'postcopy-blocktime acts on the destination: the source takes it and does nothing with it',
    );
  });
  it('is quiet on the right side, for settings both sides need, and for a line that mixes them', () => {
    expect(settingSideNote('source', 'migrate-set-capabilities', caps('auto-converge'))).toBeNull();
    expect(settingSideNote('destination', 'migrate-set-capabilities', caps('postcopy-ram'))).toBeNull();
    expect(settingSideNote('destination', 'migrate-set-capabilities', caps('postcopy-ram', 'auto-converge'))).toBeNull();
    expect(settingSideNote('destination', 'migrate-set-capabilities', { capabilities: 'auto-converge' })).toBeNull();
    expect(settingSideNote('destination', 'query-migrate', undefined)).toBeNull();
  });
  it('a setting line has the side its settings act on; a command its own side first', () => {
    expect(settingLineSide('migrate-set-capabilities {"capabilities":[{"capability":"auto-converge","state":true}]}')).toBe('source');
    expect(settingLineSide('migrate-set-parameters {"max-bandwidth": 1}')).toBe('source');
    expect(settingLineSide('migrate-set-parameters {"x-walk-window": 1}')).toBeNull();
    expect(settingLineSide('migrate-recover {"uri": "tcp:x"}')).toBeNull();
    expect(settingLineSide('migrate-set-parameters {')).toBeNull();
    expect(commandSide('migrate-recover {"uri": "tcp:x"}')).toBe('destination');
    expect(commandSide('migrate-set-capabilities {"capabilities":[{"capability":"postcopy-blocktime","state":true}]}')).toBe('destination');
  });
  it("a libvirt line has its side: the migration's virsh commands the source's daemon, the extra monitor the destination", () => {
    expect(commandSide('virsh migrate --live --postcopy --postcopy-resume pcl-guest qemu+tcp://10.213.0.2/system')).toBe('source');
    expect(commandSide('virsh migrate-postcopy pcl-guest')).toBe('source');
    expect(commandSide('x-extra-monitor exec-oob migrate-pause')).toBe('destination');
    // Either side's daemon answers these.
    expect(commandSide('virsh domstate --reason pcl-guest')).toBeNull();
    expect(commandSide('virsh list')).toBeNull();
  });
});
