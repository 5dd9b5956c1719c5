/**
 * QMP's error, shared by both ends: the server (the sim VMs) throws it from a command, the
 * client (the driver) rejects a command's promise with it. Its own module so the driver side
 * need not import the server.
 */

/** QEMU's complete ErrorClass enumeration (qapi/error.json). */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

/** An error as QMP reports it: `{"error": {"class": errorClass, "desc": message}}`. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly errorClass: QmpErrorClass,
    desc: string,
  ) {
    super(desc);
  }
  /** The error's `desc`, as QEMU names it (same as `message`). */
  get desc(): string {
    return this.message;
  }
}
