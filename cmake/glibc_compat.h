/* Force-included into every C/C++ file when TESSERA_GLIBC_COMPAT=ON (the
 * release build, scripts/release-build.sh; issue 10).
 *
 * glibc 2.29 gave exp, exp2, log, log2 and pow new default symbol versions
 * (GLIBC_2.29: new implementations without the SVID error-handling wrapper).
 * A binary linked against glibc >= 2.29 then needs GLIBC_2.29 and does not
 * load on glibc 2.28 (RHEL 8, Debian 10), although every x86-64 glibc still
 * has the original versions, GLIBC_2.2.5. These directives bind this object's
 * references to those original versions, so the release binaries need at most
 * GLIBC_2.28 (in fact 2.27: expf, exp2f, logf, log2f and powf keep their
 * GLIBC_2.27 versions, which glibc 2.28 has).
 *
 * Same results: on glibc >= 2.29 the GLIBC_2.2.5 versions are thin wrappers
 * around the same new code that add only the errno/overflow check (a spot
 * check printed bit-identical values for all five, bullseye root and Debian 12).
 * On glibc 2.28 they are simply that glibc's exp, pow, ...
 * A file that does not use these functions gets no reference from a .symver
 * directive, so including this everywhere is harmless.
 *
 * x86-64 Linux with glibc only: other architectures have other base versions
 * (aarch64: GLIBC_2.17), and musl has no symbol versions. CMake turns the
 * option on only there; the guard below makes any other use a no-op. */
#if defined(__x86_64__) && defined(__linux__) && !defined(__CUDACC__)
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver exp2,exp2@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
__asm__(".symver log2,log2@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
#endif
