/** The shape every builder returns, and the `-n NS` prefix ip and tc share. */
import { validateNetnsName } from './validate.js';

/** A program and its arguments, passed to execa as an array: never a shell string. */
export type Argv = [file: string, ...args: string[]];

/** `-n NS` in front of an `ip`/`tc` subcommand, so it acts inside that namespace. */
export function inNs(ns: string | undefined): string[] {
  return ns === undefined ? [] : ['-n', validateNetnsName(ns)];
}
