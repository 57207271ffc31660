# syntax=docker/dockerfile:1
# mailops: a static musl binary on distroless, running as the nonroot user (65532), so the
# chart's restricted Pod Security context (runAsNonRoot, readOnlyRootFilesystem) fits.

FROM rust:1-bookworm AS builder
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "${TARGET}"
# ring compiles a little C; musl-gcc (from musl-tools) targets musl libc.
ENV CC_x86_64_unknown_linux_musl=musl-gcc
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Locked: the image builds exactly what CI tested. TLS is rustls with ring, so no OpenSSL
# or C library is linked and the binary is fully static.
RUN cargo build --release --locked --target "${TARGET}" \
    && cp "target/${TARGET}/release/mailops" /mailops \
    && strip /mailops

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /mailops /mailops
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/mailops"]
CMD ["run"]
