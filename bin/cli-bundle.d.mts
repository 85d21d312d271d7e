/** Types of bin/cli-bundle.mjs (plain JavaScript, so bin/dflow.js can use it before any TypeScript loader). */
export function asciiOnly (text: string): string
export function freshCliBundle (): string | undefined
export function buildCliBundle (): Promise<string>
export function cliBundle (onError?: (err: Error) => void): Promise<string | undefined>
