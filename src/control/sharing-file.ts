/**
 * The operator's sharing file (SHARING_FILE, format in src/domain/sharing-config.ts), read at start
 * (a file that does not load stops the service) and again whenever its modification time, size or
 * inode changes, looked at no more than once a second. A file that does not load on reload leaves the
 * previous configuration in force and logs why. Without SHARING_FILE every pool is its owner's alone.
 */
import { readFileSync } from 'node:fs';
import { type Logger } from 'pino';
import { ConfigError } from '../config';
import { fileSignature } from '../file-signature';
import { EMPTY_SHARING, parseSharingConfig, type SharingConfig } from '../domain/sharing-config';

const CHECK_EVERY_MS = 1000;


export class SharingFile {
  private config: SharingConfig = EMPTY_SHARING;
  private signature: string | undefined;
  private checkedAt = 0;

  private constructor(
    private readonly path: string | undefined,
    private readonly logger: Logger,
  ) {}

  /** Loads the file now; ConfigError when it is set but does not load. */
  static open(path: string | undefined, logger: Logger): SharingFile {
    const file = new SharingFile(path, logger);
    if (path) {
      try {
        file.load();
      } catch (err) {
        throw new ConfigError(err instanceof Error ? err.message : String(err));
      }
      logger.info({ file: path, pools: Object.keys(file.config.pools).length }, 'sharing file loaded');
    }
    return file;
  }

  /** The configuration in force, reloaded first if the file changed. */
  current(now = Date.now()): SharingConfig {
    if (this.path && now - this.checkedAt >= CHECK_EVERY_MS) {
      this.checkedAt = now;
      if (fileSignature(this.path) !== this.signature) {
        try {
          this.load();
          this.logger.info({ file: this.path, pools: Object.keys(this.config.pools).length }, 'sharing file reloaded');
        } catch (err) {
          this.logger.warn({ file: this.path, problem: err instanceof Error ? err.message : String(err) }, 'sharing file not reloaded; the previous one stays in force');
        }
      }
    }
    return this.config;
  }

  private load(): void {
    if (!this.path) return;
    const signature = fileSignature(this.path);
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.signature = signature;
      throw new Error(`SHARING_FILE ${this.path} could not be read (${code ?? 'error'})`);
    }
    this.signature = signature;
    this.config = parseSharingConfig(text, this.path);
  }
}
