/*
 * hf_version.h - the version and the commit this build is (CMake passes
 * both; a build without them says so rather than failing). One place, for
 * --version, /metrics' holdfast_build_info and the webhooks' User-Agent.
 */
#ifndef HF_VERSION_H
#define HF_VERSION_H

#ifndef HF_VERSION
#define HF_VERSION "dev"
#endif
#ifndef HF_COMMIT
#define HF_COMMIT "unknown"
#endif

#endif
