#!/usr/bin/env node
// Runs Microsoft's Kusto analyzer (npm @kusto/language-service-next, the Bridge.NET build of
// Kusto.Language) over KQL queries against the table schemas in a directory.
//
//   node tests/kusto/analyze.js <tables-dir> < queries.json
//
// stdin: a JSON list of {"name": ..., "text": ...}. <tables-dir>: one JSON file per table,
// {"table": "AppTraces", "columns": {"TimeGenerated": "datetime", ...}, ...} (tests/kusto/tables).
// All tables go into one database, the default of the analysis, as in a Log Analytics workspace.
// stdout: {"tables": [...], "results": [{"name", "diagnostics": [{code, severity, category,
// message, start, length, line, column, text}], "columns": {name: type}}]}: every diagnostic
// KustoCode.GetDiagnostics() reports (syntax and semantic; errors, warnings and any other
// severity), none filtered out, and the columns of the query's result as the analyzer types them
// (null when the result is not a table).
// Exit status 0 when the analysis ran (whatever it found), 2 on bad input.
"use strict";

const fs = require("fs");
const path = require("path");

function fail(message) {
  process.stderr.write(`analyze.js: ${message}\n`);
  process.exit(2);
}

function loadKusto() {
  try {
    require("@kusto/language-service-next/bridge.js");
    require("@kusto/language-service-next/Kusto.Language.Bridge.js");
  } catch (err) {
    fail(`cannot load @kusto/language-service-next (run npm ci): ${err.message}`);
  }
  return global.Kusto.Language;
}

function loadTables(K, dir) {
  const S = K.Symbols;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  if (files.length === 0) fail(`no table schema files in ${dir}`);
  return files.map((file) => {
    const schema = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    const name = schema.table;
    if (typeof name !== "string" || `${name}.json` !== file) fail(`${file}: "table" must be the file name`);
    const entries = Object.entries(schema.columns || {});
    if (entries.length === 0) fail(`${file}: no columns`);
    const columns = entries.map(([column, type]) => {
      const symbol = S.ScalarTypes.GetSymbol(type);
      if (!symbol) fail(`${file}: column ${column} has unknown type ${type}`);
      return new S.ColumnSymbol(column, symbol, null, null, null, null);
    });
    return new S.TableSymbol.$ctor4(name, columns);
  });
}

function lineAndColumn(text, offset) {
  const before = text.slice(0, offset).split("\n");
  return [before.length, before[before.length - 1].length + 1];
}

function main() {
  const dir = process.argv[2];
  if (!dir) fail("usage: node analyze.js <tables-dir> < queries.json");
  const K = loadKusto();
  const tables = loadTables(K, dir);
  const database = new K.Symbols.DatabaseSymbol.ctor("workspace", tables);
  const globals = K.GlobalState.Default.WithDatabase(database);

  let queries;
  try {
    queries = JSON.parse(fs.readFileSync(0, "utf8"));
  } catch (err) {
    fail(`stdin is not JSON: ${err.message}`);
  }
  if (!Array.isArray(queries)) fail("stdin must be a JSON list of {name, text}");

  const results = queries.map(({ name, text }) => {
    if (typeof name !== "string" || typeof text !== "string") fail("each query needs a string name and text");
    const code = K.KustoCode.ParseAndAnalyze(text, globals);
    const diagnostics = Bridge.toArray(code.GetDiagnostics()).map((d) => {
      const [line, column] = lineAndColumn(text, d.Start);
      return {
        code: d.Code,
        severity: d.Severity,
        category: d.Category,
        message: d.Message,
        start: d.Start,
        length: d.Length,
        line,
        column,
        text: text.substr(d.Start, Math.max(d.Length, 1)),
      };
    });
    const result = code.ResultType;
    const columns =
      result instanceof K.Symbols.TableSymbol
        ? Object.fromEntries(Bridge.toArray(result.Columns).map((c) => [c.Name, c.Type.Name]))
        : null;
    return { name, diagnostics, columns };
  });
  process.stdout.write(JSON.stringify({ tables: tables.map((t) => t.Name), results }, null, 2) + "\n");
}

main();
