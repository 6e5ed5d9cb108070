import assert from "node:assert/strict";
import { parseCafe24Timestamp } from "../../../supabase/functions/_shared/cafe24/time.ts";

const iso = (value: string): string => parseCafe24Timestamp(value).toISOString();

/** Values whose results must not depend on the host's time zone (see the TZ test below). */
const ZONE_PROBES = [
  "2021-03-01T14:00:00.000",
  "2021-03-01T08:59:59.999",
  "2021-03-15T12:00:00.000",
  "2021-03-14T02:30:00.000", // 02:30 does not exist in New York on 2021-03-14 (DST starts)
  "2021-11-07T01:30:00.000", // 01:30 happens twice in New York on 2021-11-07 (DST ends)
  "1987-05-10T02:30:00", // Korea observed DST in 1987; Cafe24 values are still plain UTC+9
  "2024-02-29T23:59:59.5",
  "2021-03-01T14:00:00.000Z",
  "2021-03-01T14:00:00.000+09:00",
  "2021-02-30T00:00:00.000",
  "garbage",
];

function probeResults(): string[] {
  return ZONE_PROBES.map((value) => {
    try {
      return iso(value);
    } catch (error) {
      return error instanceof Error ? error.name : "unknown";
    }
  });
}

Deno.test("parseCafe24Timestamp() reads an offset-less value as Korea time", () => {
  assert.equal(iso("2021-03-01T14:00:00.000"), "2021-03-01T05:00:00.000Z");
  assert.equal(iso("2021-03-15T12:00:00.000"), "2021-03-15T03:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() moves a Korean morning to the previous UTC day", () => {
  assert.equal(iso("2021-03-01T08:59:59.999"), "2021-02-28T23:59:59.999Z");
  assert.equal(iso("2021-01-01T00:00:00.000"), "2020-12-31T15:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() accepts a value without a fraction", () => {
  assert.equal(iso("2021-03-01T14:00:00"), "2021-03-01T05:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() accepts a space instead of T", () => {
  assert.equal(iso("2021-03-01 14:00:00.000"), "2021-03-01T05:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() reads 1 to 9 fraction digits as truncated milliseconds", () => {
  const cases: Array<[string, string]> = [
    ["5", "500"],
    ["05", "050"],
    ["123", "123"],
    ["1234", "123"],
    ["12345", "123"],
    ["999999", "999"],
    ["0000001", "000"],
    ["12345678", "123"],
    ["123456789", "123"],
    ["999999999", "999"],
  ];
  for (const [fraction, millis] of cases) {
    assert.equal(
      iso(`2021-03-01T14:00:00.${fraction}`),
      `2021-03-01T05:00:00.${millis}Z`,
      `fraction .${fraction}`,
    );
  }
});

Deno.test("parseCafe24Timestamp() rejects 10 fraction digits and an empty fraction", () => {
  assert.throws(() => parseCafe24Timestamp("2021-03-01T14:00:00.1234567890"), SyntaxError);
  assert.throws(() => parseCafe24Timestamp("2021-03-01T14:00:00."), SyntaxError);
});

Deno.test("parseCafe24Timestamp() honours an explicit Z", () => {
  assert.equal(iso("2021-03-01T14:00:00.000Z"), "2021-03-01T14:00:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00Z"), "2021-03-01T14:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() honours an explicit +09:00 and other offsets", () => {
  assert.equal(iso("2021-03-01T14:00:00.000+09:00"), "2021-03-01T05:00:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00.000+0900"), "2021-03-01T05:00:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00.000+00:00"), "2021-03-01T14:00:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00.000-05:00"), "2021-03-01T19:00:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00.000+05:30"), "2021-03-01T08:30:00.000Z");
  assert.equal(iso("2021-03-01T14:00:00-00:30"), "2021-03-01T14:30:00.000Z");
});

Deno.test("parseCafe24Timestamp() accepts 29 February in a leap year", () => {
  assert.equal(iso("2024-02-29T12:00:00.000"), "2024-02-29T03:00:00.000Z");
});

Deno.test("parseCafe24Timestamp() rejects impossible dates and times with SyntaxError", () => {
  const impossible = [
    "2021-02-30T00:00:00.000", // 30 February
    "2021-02-29T00:00:00.000", // not a leap year
    "2021-04-31T00:00:00.000",
    "2021-03-00T00:00:00.000",
    "2021-13-01T00:00:00.000", // month 13
    "2021-00-10T00:00:00.000",
    "2021-03-01T24:00:00.000", // hour 24
    "2021-03-01T23:60:00.000",
    "2021-03-01T23:59:60.000", // leap second
    "2021-03-01T99:99:99.000",
  ];
  for (const value of impossible) {
    assert.throws(() => parseCafe24Timestamp(value), SyntaxError, value);
  }
});

Deno.test("parseCafe24Timestamp() rejects garbage and the empty string with SyntaxError", () => {
  const garbage = [
    "",
    " ",
    "garbage",
    "2021-03-01",
    "2021-03-01T14:00",
    "2021-3-1T14:00:00",
    "21-03-01T14:00:00",
    "2021/03/01 14:00:00",
    " 2021-03-01T14:00:00.000",
    "2021-03-01T14:00:00.000 ",
    "2021-03-01T14:00:00.000\n",
    "2021-03-01T14:00:00.000+09",
    "2021-03-01T14:00:00.000 KST",
    "2021-03-01T14:00:00.000z",
    "1614574800000",
    "Mon, 01 Mar 2021 05:00:00 GMT",
    "２０２１-03-01T14:00:00", // full-width digits
  ];
  for (const value of garbage) {
    assert.throws(() => parseCafe24Timestamp(value), SyntaxError, JSON.stringify(value));
  }
});

Deno.test("parseCafe24Timestamp() rejects an offset outside ±23:59", () => {
  // RFC 3339 offsets are hh:mm with hh 00-23 and mm 00-59; these are not times at all.
  for (const value of ["2021-03-01T14:00:00+09:60", "2021-03-01T14:00:00+99:00"]) {
    assert.throws(() => parseCafe24Timestamp(value), SyntaxError, value);
  }
});

function syntaxErrorOf(value: string): SyntaxError {
  try {
    parseCafe24Timestamp(value);
  } catch (error) {
    assert.ok(error instanceof SyntaxError, `expected a SyntaxError, got ${error}`);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(value)} to be rejected`);
}

Deno.test("parseCafe24Timestamp() quotes at most 40 characters of a bad value", () => {
  const garbage = syntaxErrorOf("x".repeat(40) + "REFRESH-TOKEN-LIKE-TAIL").message;
  assert.ok(garbage.includes("x".repeat(40)), garbage);
  assert.ok(!garbage.includes("xR"), garbage);
  assert.ok(!garbage.includes("TAIL"), garbage);
});

Deno.test("parseCafe24Timestamp() returns the same instants whatever the host time zone", async () => {
  const moduleUrl = new URL("../../../supabase/functions/_shared/cafe24/time.ts", import.meta.url);
  const script = `
    import { parseCafe24Timestamp } from ${JSON.stringify(moduleUrl.href)};
    const probes = ${JSON.stringify(ZONE_PROBES)};
    const results = probes.map((value) => {
      try {
        return parseCafe24Timestamp(value).toISOString();
      } catch (error) {
        return error instanceof Error ? error.name : "unknown";
      }
    });
    const offsetMinutes = new Date(2021, 2, 1, 14, 0, 0).getTimezoneOffset();
    console.log(JSON.stringify({ offsetMinutes, results }));
  `;
  const expected = probeResults();
  assert.deepEqual(expected.slice(0, 3), [
    "2021-03-01T05:00:00.000Z",
    "2021-02-28T23:59:59.999Z",
    "2021-03-15T03:00:00.000Z",
  ]);

  const zones: Array<[string, number]> = [["America/New_York", 300], ["Asia/Seoul", -540]];
  const outputs = await Promise.all(zones.map(async ([zone]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      // The parent environment plus TZ: an empty environment would hide other problems.
      env: { ...Deno.env.toObject(), TZ: zone },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `TZ=${zone}: ${stderr}`);
    return JSON.parse(stdout.trim()) as { offsetMinutes: number; results: string[] };
  }));

  zones.forEach(([zone, offsetMinutes], index) => {
    const output = outputs[index];
    assert.ok(output !== undefined);
    // Proves the child really ran in that zone; otherwise the comparison would prove nothing.
    assert.equal(output.offsetMinutes, offsetMinutes, `TZ=${zone} was not applied`);
    assert.deepEqual(output.results, expected, `TZ=${zone}`);
  });
});
