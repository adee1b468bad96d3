"""A Parley client in Python: submit articles, follow the events they lead
to, and query what Parley knows, over gRPC with stubs generated from
proto/parley/v1 by grpcio-tools.

    pip install -r requirements.txt
    python parley_client.py --server 127.0.0.1:50051 article.txt other.html

It prints one JSON object per line on stdout:
  {"submitted": ...}   a document receipt (SubmitArticle)
  {"delivery": ...}    an event as a subscriber receives it (Subscribe), in
                       proto3 JSON (google.protobuf.json_format)
  {"query": ...}       an event from the history (QueryEvents)
  {"entity": ...}      an entity found by name (SearchEntities)

Stubs are generated on first use into --stubs (default: ./generated).
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def generate_stubs(out_dir):
    """Runs grpcio-tools' protoc over proto/parley/v1 into out_dir (once)."""
    marker = os.path.join(out_dir, "parley", "v1", "ingest_pb2_grpc.py")
    if os.path.exists(marker):
        return
    from grpc_tools import protoc
    import grpc_tools

    os.makedirs(out_dir, exist_ok=True)
    protos_dir = os.path.join(PROTO_ROOT, "parley", "v1")
    files = sorted(
        os.path.join("parley", "v1", name)
        for name in os.listdir(protos_dir)
        if name.endswith(".proto")
    )
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main(
        ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"] + files
    )
    if status != 0:
        sys.exit(f"parley_client: protoc failed with status {status}")


def emit(kind, value):
    print(json.dumps({kind: value}), flush=True)


def submit(ingest, pb, path):
    """SubmitArticle, waiting as long as the server says when over its rate."""
    import grpc

    with open(path, "rb") as f:
        request = pb.SubmitArticleRequest(
            name=os.path.basename(path), content=f.read(), source_url=path)
    while True:
        try:
            return ingest.SubmitArticle(request, timeout=30)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            delay_ms = dict(error.trailing_metadata() or ()).get(
                "grpc-retry-pushback-ms", "100")
            time.sleep(int(delay_ms) / 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051",
                        help="host:port of `parley up` (every API on one port)")
    parser.add_argument("--filter", default="",
                        help="filter expression, e.g. 'type = talks_held'")
    parser.add_argument("--expect", type=int, default=1,
                        help="stop following after this many deliveries")
    parser.add_argument("--timeout", type=float, default=60,
                        help="give up following after this many seconds")
    parser.add_argument("--search", default="", help="an entity name to look up")
    parser.add_argument("--stubs", default=os.path.join(HERE, "generated"))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()

    generate_stubs(args.stubs)
    sys.path.insert(0, args.stubs)
    import grpc
    from google.protobuf import json_format
    from parley.v1 import history_pb2, history_pb2_grpc
    from parley.v1 import ingest_pb2, ingest_pb2_grpc
    from parley.v1 import notify_pb2, notify_pb2_grpc
    from parley.v1 import resolver_pb2, resolver_pb2_grpc

    channel = grpc.insecure_channel(args.server)
    grpc.channel_ready_future(channel).result(timeout=30)

    ingest = ingest_pb2_grpc.IngestServiceStub(channel)
    for path in args.files:
        response = submit(ingest, ingest_pb2, path)
        for receipt in response.documents:
            emit("submitted", json_format.MessageToDict(
                receipt, preserving_proto_field_name=True))
        for error in response.errors:
            emit("error", {"name": error.name, "message": error.message})

    notify = notify_pb2_grpc.NotifyServiceStub(channel)
    stream = notify.Subscribe(
        notify_pb2.SubscribeRequest(filter=args.filter, from_sequence=1),
        timeout=args.timeout)
    received = 0
    try:
        for delivery in stream:
            # Proto3 JSON round trip: what any other language would read.
            text = json_format.MessageToJson(delivery, preserving_proto_field_name=True)
            again = notify_pb2.SubscribeResponse()
            json_format.Parse(text, again)
            assert again == delivery, "proto3 JSON round trip changed the delivery"
            emit("delivery", json.loads(text))
            received += 1
            if received >= args.expect:
                break
    finally:
        stream.cancel()

    history = history_pb2_grpc.EventHistoryServiceStub(channel)
    page = history.QueryEvents(
        history_pb2.QueryEventsRequest(filter=args.filter, page_size=100), timeout=30)
    for row in page.events:
        emit("query", json_format.MessageToDict(row, preserving_proto_field_name=True))

    if args.search:
        resolver = resolver_pb2_grpc.ResolverServiceStub(channel)
        found = resolver.SearchEntities(
            resolver_pb2.SearchEntitiesRequest(query=args.search, limit=3), timeout=30)
        for candidate in found.results:
            emit("entity", json_format.MessageToDict(
                candidate, preserving_proto_field_name=True))


if __name__ == "__main__":
    main()
