import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'

export class AuthorizedListError extends Error {
  static readonly NAME = 'AuthorizedListError'
  constructor (message: string) {
    super(message)
    this.name = AuthorizedListError.NAME
  }
}

/** Parses an authorized-submitters file: one public id per line (`dflow key new` prints it), `#` starts a comment. */
export function parseAuthorizedSubmitters (text: string, file = 'authorized submitters'): Set<string> {
  const ids = new Set<string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') return
    try {
      peerIdFromString(line)
    } catch {
      throw new AuthorizedListError(`${file}:${i + 1}: ${JSON.stringify(line)} is not an identity id (expected what \`dflow key new FILE\` prints, e.g. 12D3KooW...)`)
    }
    ids.add(line)
  })
  return ids
}

export async function loadAuthorizedSubmitters (file: string): Promise<Set<string>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new AuthorizedListError(`cannot read authorized submitters ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  return parseAuthorizedSubmitters(text, file)
}
