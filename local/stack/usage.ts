/**
 * A command-line usage error, as the local scripts print it: one line, the error and where the
 * options are listed, never buried above the whole usage text.
 */
export function usageError(command: string, message: string): string {
  return `${command}: ${message} (${command} -- --help lists the options)`;
}
