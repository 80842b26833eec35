import type { Logger } from "../log.js";

/** An SNS control message posted to an HTTPS subscription (not a notification). */
export interface SnsControl {
  type: "SubscriptionConfirmation" | "UnsubscribeConfirmation";
  topicArn: string;
  subscribeUrl: string | null;
}

/** SNS's control messages (a subscription to confirm, an unsubscription); null for anything else. */
export function snsControl(body: unknown): SnsControl | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const b = body as Record<string, unknown>;
  if (b.Type !== "SubscriptionConfirmation" && b.Type !== "UnsubscribeConfirmation") return null;
  return {
    type: b.Type,
    topicArn: typeof b.TopicArn === "string" ? b.TopicArn : "",
    subscribeUrl: typeof b.SubscribeURL === "string" ? b.SubscribeURL : null,
  };
}

/** Only SNS's own endpoints are visited to confirm a subscription (never a URL of the sender's choosing). */
export function isSnsUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (
      u.protocol === "https:" &&
      /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/.test(u.hostname) &&
      u.searchParams.get("Action") === "ConfirmSubscription"
    );
  } catch {
    return false;
  }
}

/**
 * Confirms an SNS HTTPS subscription by visiting its SubscribeURL (an SNS endpoint only), as SNS
 * asks; says what happened. A subscription not confirmed here can be confirmed by hand with the
 * logged URL (or `aws sns confirm-subscription`).
 */
export async function confirmSubscription(
  c: SnsControl,
  log: Logger,
  fetchImpl: typeof fetch = fetch,
): Promise<"confirmed" | "unconfirmed" | "ignored"> {
  if (c.type === "UnsubscribeConfirmation") {
    log.warn("SNS says the subscription to this endpoint was removed", { topicArn: c.topicArn });
    return "ignored";
  }
  if (!c.subscribeUrl || !isSnsUrl(c.subscribeUrl)) {
    log.warn("SNS subscription confirmation with a SubscribeURL that is not an SNS endpoint: not visited; confirm it by hand", {
      topicArn: c.topicArn,
      subscribeUrl: c.subscribeUrl,
    });
    return "unconfirmed";
  }
  try {
    const res = await fetchImpl(c.subscribeUrl, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    log.info("SNS subscription confirmed", { topicArn: c.topicArn });
    return "confirmed";
  } catch (err) {
    log.warn("could not confirm the SNS subscription: open its SubscribeURL to confirm it by hand", {
      topicArn: c.topicArn,
      subscribeUrl: c.subscribeUrl,
      reason: (err as Error).message,
    });
    return "unconfirmed";
  }
}
