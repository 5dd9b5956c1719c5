/** QMP command names the console completes (QEMU's spelling; `x-` ones are ours). */
export const QMP_COMMANDS: readonly string[] = [
  'query-status',
  'query-migrate',
  'migrate-set-capabilities',
  'migrate-set-parameters',
  'migrate-incoming',
  'migrate',
  'migrate-start-postcopy',
  'migrate-pause',
  'migrate-recover',
  'migrate_cancel',
  'stop',
  'cont',
  'quit',
  'pmemsave',
  'x-query-pages',
];
