// js-sql: Denies DROP TABLE unless the caller is in an allowed group; masks the email column.
//
// Built into a component by ComponentizeJS against the
// WIT world `gatehouse:policy/postgres-policy@0.1.0`: one exported object per
// interface, functions in camelCase, variants as `{ tag, val }`, and a
// `result<_, string>` export returns normally for ok and throws for err.

import { settings as hostSettings } from "gatehouse:policy/host@0.1.0";

function settings() {
  const value = JSON.parse(hostSettings());
  if (value.allow_groups === undefined) value.allow_groups = ["ops"];
  return value;
}

function inAny(ctx, groups) {
  return groups.some((g) => ctx.principal.groups.includes(g));
}

function decision(verdict) {
  return { verdict, annotations: [] };
}

function detector(name) {
  return { target: { tag: "detector", val: name }, method: { tag: "redact" } };
}

function column(name) {
  return { target: { tag: "column", val: name }, method: { tag: "redact" } };
}

export const meta = {
  describe() {
    return {
      name: "js-sql",
      version: "0.1.0",
      summary: "Denies DROP TABLE unless the caller is in an allowed group; masks the email column",
      protocols: ["postgres"],
      settingsSchema: "",
    };
  },
  validateConfig(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw `settings are not valid JSON: ${e.message}`;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw "settings must be a JSON object";
    }
    for (const key of Object.keys(value)) {
      if (key !== "allow_groups") throw `unknown settings key ${JSON.stringify(key)}`;
    }
    const groups = value.allow_groups ?? [];
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === "string")) {
      throw "allow_groups: must be a list of strings";
    }
  },
};

export const postgres = {
  onQuery(ctx, query) {
    const drops = query.statements.some((s) => s.kind === "drop");
    if (drops && !inAny(ctx, settings().allow_groups)) {
      return decision({ tag: "deny", val: "DROP needs one of the allowed groups" });
    }
    return decision({ tag: "allow" });
  },
  onResultColumns(ctx, query, columns) {
    return decision({ tag: "mask", val: [column("email")] });
  },
};
