# registryd container image, built offline: `make image` compiles a static
# binary into bin/ first, so no base image has to be pulled. The final image
# is FROM scratch: the binary, CA certificates, a passwd entry for the
# non-root user, the default config, and the storage volume.
FROM scratch

ARG VERSION=dev
ARG SOURCE=https://github.com/registryd/registryd

LABEL org.opencontainers.image.title="registryd" \
      org.opencontainers.image.description="OCI Distribution 1.1 / Docker Registry HTTP API V2 server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY bin/image/rootfs/ /
COPY --chown=65532:65532 bin/image/volume/ /var/lib/registry/
COPY deploy/config.yml /etc/registryd/config.yml

USER 65532:65532
EXPOSE 5000
VOLUME /var/lib/registry
ENTRYPOINT ["/usr/local/bin/registryd"]
CMD ["serve", "/etc/registryd/config.yml"]
