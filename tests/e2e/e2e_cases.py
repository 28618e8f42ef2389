"""The Dockerfiles the differential tests build with both docker and strata.

Each case covers a family of instructions; together they use every instruction and the
COPY/ADD rules docker users rely on. Features docker 20.10's built-in BuildKit front end does
not know (heredocs, COPY --link, --parents, --exclude) are not here: there is nothing to
compare them with offline.
"""

from __future__ import annotations

from e2e_tools import BASE_IMAGE, Case, ContextItem, Dir, File, HardLink, Run, Symlink, TarGz

BASE = BASE_IMAGE

COMMON_CONTEXT: dict[str, ContextItem] = {
    "a.txt": File("alpha\n"),
    "b.txt": File("bravo\n", 0o640),
    "exec.sh": File("#!/bin/sh\necho exec\n", 0o755),
    "dir": Dir(0o750),
    "dir/one.txt": File("one\n"),
    "dir/sub": Dir(0o700),
    "dir/sub/two.txt": File("two\n", 0o600),
    "dir/link": Symlink("one.txt"),
    "dir/abs": Symlink("/etc/passwd"),
    "dir/empty": Dir(0o755),
    "link-to-a": Symlink("a.txt"),
    "notes.md": File("# notes\n"),
    "ignored/secret": File("do not send\n"),
    ".dockerignore": File("ignored/\n*.tmp\n"),
    "scratch.tmp": File("tmp\n"),
}

CASES: list[Case] = [
    Case("run-forms", f"""\
FROM {BASE}
RUN echo shell-form > /shell.txt && mkdir -p /made/deep && chmod 0700 /made
RUN ["/bin/sh", "-c", "echo exec-form > /exec.txt"]
RUN ["touch", "/touched"]
RUN echo "$HOME:$PATH:$(pwd)" > /env.txt
RUN mkfifo /fifo && ln -s /shell.txt /sym && ln /shell.txt /hard \\
 && chmod 4755 /exec.txt && mkdir /sticky && chmod 1777 /sticky && chown 1000:1000 /touched
CMD echo from-cmd
""", runs=(Run((), "from-cmd"), Run(("cat", "/env.txt")))),

    Case("run-deletes", f"""\
FROM {BASE}
RUN mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b && echo keep > /data/keep
RUN rm -rf /data/sub /data/a /bin/vi && rm /etc/group
RUN rm -rf /data && mkdir /data && echo new > /data/new
RUN rm -rf /usr/bin && echo now-a-file > /usr/bin
RUN rm -rf /var && ln -s /tmp /var
""", runs=(Run(("ls", "/data"), "new"),)),

    Case("copy-files", f"""\
FROM {BASE}
COPY a.txt /a-file
COPY a.txt /newdir/
COPY a.txt b.txt /multi/
COPY *.txt /wild/
COPY dir /dir-contents
COPY dir/ /dir-slash/
COPY exec.sh /usr/local/bin/
COPY link-to-a /followed
COPY dir/link /dirlink-followed
WORKDIR /work
COPY a.txt .
COPY a.txt rel/
COPY b.txt rel-file
COPY . /all/
""", context=COMMON_CONTEXT, runs=(Run(("cat", "/work/rel-file"), "bravo"),)),

    Case("copy-chown-chmod", f"""\
FROM {BASE}
COPY --chown=app:app a.txt /o/app-named
COPY --chown=1000 a.txt /o/uid-only
COPY --chown=nobody:app a.txt /o/mixed
COPY --chown=1234:5678 dir /o/numeric-dir/
COPY --chmod=0600 a.txt /o/chmod-file
COPY --chmod=0750 dir /o/chmod-dir/
COPY --chown=app --chmod=0711 exec.sh /o/both
""", context=COMMON_CONTEXT),

    Case("copy-into-existing", f"""\
FROM {BASE}
RUN mkdir -p /target/keep && echo old > /target/file && chmod 0700 /target
COPY dir /target/
COPY a.txt /target/file
COPY a.txt /deep/new/dirs/file
COPY b.txt /etc/
COPY dir/sub /etc/
""", context=COMMON_CONTEXT),

    Case("add-archives", f"""\
FROM {BASE}
ADD archive.tar.gz /opt/
ADD archive.tar.gz /opt2
ADD a.txt /added/
ADD --chown=app:app a.txt /added/owned.txt
ADD dir /added-dir/
""", context={
        **COMMON_CONTEXT,
        "archive.tar.gz": TarGz((
            ("pkg", None, 0o755, 0, 0),
            ("pkg/bin", None, 0o750, 0, 0),
            ("pkg/bin/tool", b"#!/bin/sh\necho tool\n", 0o755, 1000, 1000),
            ("pkg/etc/conf", b"x=1\n", 0o600, 123, 456),
        )),
    }, runs=(Run(("sh", "/opt/pkg/bin/tool"), "tool"),)),

    Case("multi-stage", f"""\
FROM {BASE} AS build
RUN mkdir -p /out/bin && echo built > /out/bin/artifact && chmod 0755 /out/bin/artifact \\
 && echo log > /out/log.txt
FROM {BASE} AS unused
RUN false
FROM build AS mid
RUN echo mid > /mid.txt
FROM {BASE}
COPY --from=build /out/ /app/
COPY --from=0 /out/log.txt /logs/
COPY --from=mid /mid.txt /mid.txt
COPY --from={BASE} /etc/passwd /copied-passwd
COPY --from=build --chown=app:app /out/bin /owned-bin
CMD ["cat", "/app/bin/artifact"]
""", runs=(Run((), "built"),)),

    Case("multi-stage-target", f"""\
FROM {BASE} AS build
RUN echo built > /artifact
FROM build AS mid
RUN echo mid > /mid.txt
CMD ["cat", "/mid.txt"]
FROM {BASE} AS final
RUN false
""", target="mid", runs=(Run((), "mid"),)),

    Case("metadata", f"""\
FROM {BASE}
ENV A=1 B="two words" C=$A-x
ENV legacy value with spaces
ARG BUILDONLY=default
ARG FROMCLI
ENV FROM_ARG=${{BUILDONLY}}
LABEL one=1 "two words"="a b" multi="line \\
continued"
LABEL version=$A
EXPOSE 80 443/tcp 53/udp ${{A}}000
VOLUME ["/data", "/logs"]
VOLUME /cache /more
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD wget -q localhost || exit 1
USER app:app
WORKDIR /srv
WORKDIR sub
WORKDIR $A
ONBUILD RUN echo triggered > /onbuild.txt
ONBUILD LABEL from-onbuild=yes
RUN echo "$FROMCLI $BUILDONLY" > /tmp/args.txt
CMD ["sh", "-c", "echo $A $B; pwd; id"]
""", build_args={"FROMCLI": "cli"},
        runs=(Run((), "1 two words\n/srv/sub/1\nuid=1000(app) gid=1000(app) groups=1000(app)"),)),

    Case("entrypoint-keeps-own-stage-cmd", f"""\
FROM {BASE}
CMD ["kept"]
ENTRYPOINT ["echo", "ep"]
""", runs=(Run((), "ep kept"), Run(("x", "y"), "ep x y"))),

    Case("entrypoint-resets-inherited-cmd", f"""\
FROM {BASE} AS parent
CMD ["from-parent"]
FROM parent
ENTRYPOINT ["echo", "ep"]
""", runs=(Run((), "ep"),)),

    Case("cmd-after-entrypoint", f"""\
FROM {BASE}
ENTRYPOINT ["echo", "ep"]
CMD ["c"]
""", runs=(Run((), "ep c"),)),

    Case("shell-instruction", f"""\
FROM {BASE}
SHELL ["/bin/sh", "-ec"]
RUN echo "$0" > /run-shell.txt
HEALTHCHECK CMD echo healthy
ENTRYPOINT echo ep-shell
CMD echo cmd-shell
""", runs=(Run((), "ep-shell"),)),

    Case("inherited-config", f"""\
FROM {BASE} AS parent
HEALTHCHECK --retries=7 CMD true
ENTRYPOINT ["echo"]
CMD ["parent-cmd"]
EXPOSE 9000
FROM parent
HEALTHCHECK NONE
CMD child-shell
""", runs=(Run((), "/bin/sh -c child-shell"),)),

    Case("onbuild-in-stage", f"""\
FROM {BASE} AS parent
ONBUILD RUN echo triggered > /triggered.txt
ONBUILD ENV TRIGGERED=yes
FROM parent
RUN echo "seen:$TRIGGERED" > /seen.txt
"""),

    Case("onbuild-parent", f"""\
FROM {BASE}
WORKDIR /parent
ONBUILD COPY a.txt ./from-child-context
ONBUILD RUN echo triggered > /triggered.txt && pwd > /trigger-pwd.txt
ONBUILD ENV TRIGGERED=yes
CMD ["cat", "/triggered.txt"]
""", also_tag="e2e-onbuild-parent:1"),

    Case("onbuild-child", """\
FROM e2e-onbuild-parent:1
RUN echo "seen:$TRIGGERED" > /seen.txt
""", context={"a.txt": File("child context\n")}, needs=("onbuild-parent",),
        runs=(Run(("cat", "/triggered.txt", "/seen.txt", "/parent/from-child-context"),
                  "triggered\nseen:yes\nchild context"),)),

    Case("args-scoping", f"""\
ARG BASE={BASE}
ARG GLOBAL=g
FROM ${{BASE}}
ARG GLOBAL
ARG LOCAL=l
ARG OVERRIDE=default
ENV FROM_ENV=env
ARG FROM_ENV=arg
RUN echo "$GLOBAL $LOCAL $OVERRIDE $FROM_ENV [$TARGETARCH]" > /args.txt
ARG TARGETARCH
ARG TARGETOS
ARG TARGETPLATFORM
ARG BUILDPLATFORM
RUN echo "$TARGETARCH $TARGETOS $TARGETPLATFORM $BUILDPLATFORM" > /platform.txt
RUN echo "${{UNSET:-fallback}} ${{GLOBAL:+set}} ${{LOCAL:-x}}" > /expand.txt
""", build_args={"OVERRIDE": "cli"},
        runs=(Run(("cat", "/args.txt", "/platform.txt", "/expand.txt")),)),

    Case("run-as-user", f"""\
FROM {BASE}
USER app
RUN echo me > /tmp/by-app && id > /tmp/id.txt
WORKDIR /tmp/work
RUN touch made-here
USER 1000:0
RUN id > /tmp/id2.txt
USER root
RUN mkdir /root/x && chown nobody /root/x
""", runs=(Run(("cat", "/tmp/id.txt", "/tmp/id2.txt")),)),

    Case("escape-directive", f"""\
# escape=`
FROM {BASE}
ENV PRICE=`$5
RUN echo "one" `
# a comment line inside the continuation
    "two" > /joined.txt
LABEL path="C:\\dir"
RUN echo "$PRICE" > /price.txt
""", runs=(Run(("cat", "/joined.txt", "/price.txt"), "one two\n$5"),)),

    Case("run-mounts", f"""\
FROM {BASE}
RUN --mount=type=cache,target=/cache echo cached > /cache/x && cp /cache/x /from-cache
RUN --mount=type=bind,source=dir,target=/mnt cat /mnt/one.txt > /from-bind
RUN --mount=type=tmpfs,target=/scratch touch /scratch/gone && ls /scratch > /tmpfs-list
""", context=COMMON_CONTEXT, runs=(Run(("cat", "/from-cache", "/from-bind"), "cached\none"),),
        mount_stubs=("cache", "mnt", "scratch")),

    Case("scratch-final", f"""\
FROM {BASE} AS src
RUN mkdir -p /out && echo hi > /out/hi
FROM scratch
COPY --from=src /out/hi /hi
COPY a.txt /etc/
ENV PATH=/bin
""", context=COMMON_CONTEXT),

    Case("dockerignore", f"""\
FROM {BASE}
COPY . /ctx/
""", context={
        "a.log": File("a\n"),
        "keep.log": File("keep\n"),
        "secret/k": File("k\n"),
        "sub/x.bak": File("bak\n"),
        "sub/y.txt": File("y\n"),
        "sub/deeper/z.bak": File("z\n"),
        ".dockerignore": File("*.log\n!keep.log\nsecret/\n**/*.bak\n"),
    }),

    Case("env-in-instructions", f"""\
FROM {BASE}
WORKDIR rel
RUN pwd > /first-workdir.txt
ENV DEST=/opt/dest USERNAME=app PORT=8080 SIG=SIGUSR1 VOL=/vol
WORKDIR ${{DEST}}
COPY a.txt $DEST/
ADD b.txt ${{DEST}}/b-added
USER ${{USERNAME}}
EXPOSE $PORT/udp
STOPSIGNAL $SIG
VOLUME $VOL
LABEL dest=$DEST quoted='$DEST' braced="${{DEST}}-x"
""", context=COMMON_CONTEXT, runs=(Run(("cat", "/first-workdir.txt"), "/rel"),)),

    Case("copy-edge-cases", f"""\
FROM {BASE} AS Builder
RUN mkdir -p /out/real && echo target > /out/real/file && ln -s real /out/link \
 && ln -s real/file /out/filelink
FROM {BASE}
RUN mkdir /existing
COPY a.txt /existing
COPY d* /globbed-dirs/
COPY hard1 hard2 /hardlinks/
COPY ["name with spaces.txt", "/spaced dest/"]
COPY unicodé.txt /
COPY --from=builder /out/filelink /from-stage-followed
COPY --from=builder /out/link /from-stage-dir-link
COPY --from=builder /out/ /from-stage-all/
COPY big.bin /big.bin
""", context={
        "a.txt": File("alpha\n"),
        "d1": Dir(0o755), "d1/x": File("x\n"),
        "d2": Dir(0o700), "d2/y": File("y\n", 0o600), "d2/sub": Dir(), "d2/sub/z": File("z\n"),
        "hard1": File("shared inode\n"), "hard2": HardLink("hard1"),
        "name with spaces.txt": File("spaces\n"),
        "unicodé.txt": File("unicode\n"),
        "big.bin": File(bytes(range(256)) * 8192),
    }),

    Case("add-compressed", f"""\
FROM {BASE}
ADD plain.tar /plain/
ADD packed.tar.xz /xz/
ADD packed.tar.bz2 /bz2/
ADD notatar.gz /raw/
ADD --chown=app:app packed.tar.xz /owned-xz/
""", context={
        "plain.tar": TarGz((("p", None, 0o755, 0, 0), ("p/f", b"plain\n", 0o644, 7, 7)), ""),
        "packed.tar.xz": TarGz((("x/f", b"xz\n", 0o640, 0, 0),), "xz"),
        "packed.tar.bz2": TarGz((("b/f", b"bz2\n", 0o600, 1, 1),), "bz2"),
        "notatar.gz": File(b"\x1f\x8b\x08\x00" + bytes(20)),
    }),

    Case("metadata-edge-cases", f"""\
FROM {BASE}
ENV EMPTY= SPACED="a  b" ESCAPED=\\$HOME
LABEL empty="" "quoted key"=v
EXPOSE 8000-8002 9000/udp
HEALTHCHECK --interval=1m30s CMD ["sh", "-c", "exit 0"]
STOPSIGNAL 9
USER 1000
VOLUME ["/vol with space"]
WORKDIR /a/../b/./c
CMD []
""", runs=(Run(("pwd",), "/b/c"),)),

    Case("copy-glob-matches-nothing", f"""\
FROM {BASE}
COPY *.nomatch /x/
COPY a.txt *.nomatch /y/
""", context={"a.txt": File("a\n")}),

    Case("bind-mount-context-and-secret", f"""\
FROM {BASE}
RUN --mount=type=bind,target=/ctx cd /ctx && find . | sort > /listing.txt
RUN --mount=type=bind,source=dir,target=/d,rw touch /d/scratch-write && ls /d > /d-listing.txt
RUN --mount=type=secret,id=token cat /run/secrets/token > /secret-copy.txt
RUN --mount=type=secret,id=token,target=/opt/tok wc -c < /opt/tok > /secret-size.txt
""", context=COMMON_CONTEXT, secrets={"token": "s3cr3t-value\n"},
        runs=(Run(("cat", "/secret-copy.txt"), "s3cr3t-value"),),
        mount_stubs=("ctx", "d", "run/secrets", "run", "opt/tok", "opt")),

    Case("build-arg-in-from", """\
ARG BASE=nonexistent-image:1
FROM --platform=$BUILDPLATFORM ${BASE} AS base
ARG FLAVOR=plain
ARG TARGETPLATFORM
RUN echo "$FLAVOR $TARGETPLATFORM" > /flavor
FROM base
RUN cat /flavor > /copied-flavor && echo "[$FLAVOR]" > /child-sees-arg
""", build_args={"BASE": BASE, "FLAVOR": "spicy"},
        runs=(Run(("cat", "/copied-flavor"), "spicy linux/amd64"),)),

    Case("special-files", f"""\
FROM {BASE}
RUN mknod /chardev c 1 3 && mknod /blockdev b 7 9 && chmod 0600 /blockdev \
 && mkdir -m 2775 /setgid-dir && touch /setgid-dir/f && chown 65534:65534 /setgid-dir/f \
 && touch /no-perms && chmod 0000 /no-perms && ln -s /does/not/exist /dangling \
 && mkdir -p /a/b && echo x > /a/b/orig && ln /a/b/orig /hard-elsewhere \
 && touch /empty && mkdir /locked && chmod 0000 /locked \
 && touch "/$(printf 'n%.0s' $(seq 1 150))" \
 && d="/deep/$(printf 'dddddddddd/%.0s' $(seq 1 25))" && mkdir -p "$d" && echo deep > "${{d}}end"
RUN rm /a/b/orig && echo replaced > /a/b/orig
""", runs=(Run(("cat", "/hard-elsewhere", "/a/b/orig"), "x\nreplaced"),)),

    Case("custom-dockerfile-name", f"""\
FROM {BASE}
COPY a.txt /from-custom-file
""", context={"a.txt": File("custom\n")}, dockerfile_name="build/Custom.dockerfile"),
]

CASES_BY_NAME = {case.name: case for case in CASES}
