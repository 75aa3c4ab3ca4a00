// Starts @vercel/cosmosdb-server over HTTPS (arguments: --host H --port P) with two fixes that
// make it answer as Cosmos DB does:
// - a point read of a document that does not exist crashes its handler into a 500, where Cosmos
//   DB answers 404. The app's repository must see the 404 that Azure sends, so the handler is
//   wrapped before the server loads its routes;
// - its command line closes the connection after every response (its `keepAlive` option is off
//   and not exposed). The Cosmos gateway keeps connections open, and the SDK reuses them: a new
//   TLS handshake per request would be most of the app's CPU in `make bench`, a cost Azure
//   does not have;
// - a transactional batch carries its partition key in the request's header, as the Cosmos REST
//   API and the Python SDK send it; the stand-in reads it from each operation instead, and
//   answers 500 to every replace or delete. Each operation is given the header's key.
//   The stand-in does NOT make a batch atomic (a failed operation leaves the earlier ones
//   written) and this file does not pretend it does: docs/invoices.md says what that leaves
//   untested locally.
const handler = require("@vercel/cosmosdb-server/lib/handler/read-document");
const original = handler.default;
handler.default = (account, req, res, params) => {
  try {
    return original(account, req, res, params);
  } catch (err) {
    if (err instanceof TypeError) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    throw err;
  }
};
const json = require("@vercel/cosmosdb-server/lib/json");
const readBody = json.default;
json.default = async (req) => {
  const body = await readBody(req);
  const partitionKey = req.headers["x-ms-documentdb-partitionkey"];
  if (String(req.headers["x-ms-cosmos-is-batch-request"]).toLowerCase() === "true" && Array.isArray(body)) {
    for (const operation of body) {
      if (operation && operation.partitionKey === undefined) operation.partitionKey = partitionKey;
    }
  }
  return body;
};
const { createHttpsServer } = require("@vercel/cosmosdb-server");

const argv = process.argv.slice(2);
const option = (name) => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const host = option("--host");
const port = parseInt(option("--port"), 10);
const server = createHttpsServer({ keepAlive: true }).listen(port, host, () => {
  console.log(`Ready to accept HTTPS connections at ${host}:${server.address().port}`);
});
