/**
 * A process of its own that echoes every byte back on each connection (64-byte pings, no
 * delay): the idle party of link-accuracy's wake-up control row. It prints its port on stdout.
 */
import net from 'node:net';

const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('error', () => {});
  s.on('data', (d: Buffer) => s.write(d));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`));
// Ends with its parent's pipe.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
