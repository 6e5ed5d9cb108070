/** The headers of an event delivery (see platform/signature.ts for the signature itself). */
export const EVENT_HEADERS = {
  id: "X-Cafe24-Connector-Event-Id",
  timestamp: "X-Cafe24-Connector-Timestamp",
  signature: "X-Cafe24-Connector-Signature",
} as const;
