/**
 * An incremental parser of the server-sent events format (the part `:followLogs` uses: `event:`,
 * `data:` and comment lines). Pure, so the client's follow works in Node and in a browser alike,
 * and chunks split anywhere — mid-line, mid-event, between `\r` and `\n` — give the same events.
 */

export interface ServerSentEvent {
  /** The `event:` field; `message` when the event named none (the format's default). */
  event: string;
  /** The `data:` lines joined by `\n`. */
  data: string;
}

export class ServerSentEventParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  /** Feeds a chunk of the stream; returns the events it completed. */
  push(chunk: string): ServerSentEvent[] {
    this.buffer += chunk;
    const out: ServerSentEvent[] = [];
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      // A lone `\r` at the end may be the first half of `\r\n`: wait for the next chunk.
      if (end < 0 || (this.buffer[end] === '\r' && end === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith('\r\n', end) ? 2 : 1));
      const done = this.line(line);
      if (done) out.push(done);
    }
    return out;
  }

  private line(line: string): ServerSentEvent | undefined {
    if (line === '') {
      // A blank line dispatches the event; one with no data lines is dropped, as browsers do.
      const event = this.data.length > 0 ? { event: this.event || 'message', data: this.data.join('\n') } : undefined;
      this.event = '';
      this.data = [];
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    return undefined;
  }
}
