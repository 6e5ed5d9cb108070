/**
 * An app's webhook endpoint for tests: records every request it gets (path, headers, body) and
 * answers what the test says, per request. Tests wait for deliveries with `waitFor` instead of
 * sleeping.
 *
 *   const receiver = startWebhookReceiver();
 *   receiver.answer = (d) => d.eventId === 7 && d.attempt === 1 ? 500 : 200;
 *   …
 *   await receiver.close();
 */

export interface Delivery {
  path: string;
  headers: Headers;
  body: string;
  /** X-Cafe24-Connector-Event-Id as a number (NaN when absent). */
  eventId: number;
  /** How many times this event id has arrived, this one included. */
  attempt: number;
}

/** A status, a full response, or a promise of one (to hold a delivery open). */
export type Answer = number | Response | Promise<number | Response>;

export interface WebhookReceiver {
  /** e.g. http://127.0.0.1:40123/hook */
  url: string;
  origin: string;
  deliveries: Delivery[];
  /** Decides each answer; default 200. */
  answer: (delivery: Delivery) => Answer;
  /** Resolves once `count` requests have arrived in all (not only new ones). */
  waitFor(count: number, timeoutMs?: number): Promise<Delivery[]>;
  close(): Promise<void>;
}

export function startWebhookReceiver(): WebhookReceiver {
  const deliveries: Delivery[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const receiver: Partial<WebhookReceiver> = { deliveries, answer: () => 200 };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const eventId = Number(req.headers.get("x-cafe24-connector-event-id") ?? "NaN");
    const delivery: Delivery = {
      path: new URL(req.url).pathname,
      headers: req.headers,
      body: await req.text(),
      eventId,
      attempt: deliveries.filter((d) => d.eventId === eventId).length + 1,
    };
    deliveries.push(delivery);
    for (const waiter of waiters.filter((w) => deliveries.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    const answer = await receiver.answer!(delivery);
    return typeof answer === "number" ? new Response(null, { status: answer }) : answer;
  });
  const origin = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;

  return Object.assign(receiver, {
    url: `${origin}/hook`,
    origin,
    async waitFor(count: number, timeoutMs = 20_000) {
      if (deliveries.length < count) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => waiters.push({ count, resolve })),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`waited for ${count} deliveries, got ${deliveries.length}`)),
              timeoutMs,
            );
          }),
        ]).finally(() => clearTimeout(timer));
      }
      return deliveries.slice(0, count);
    },
    close: () => server.shutdown(),
  }) as WebhookReceiver;
}
