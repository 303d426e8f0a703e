# PGXS part of the build, run inside the build directory by Makefile.
MODULES = strata_walredo
# No LLVM bitcode: the function is not JIT-inlined and clang may be absent.
with_llvm = no
PG_CPPFLAGS = -DSTRATA_WALREDO_BUILD_ID='"$(STRATA_BUILD_ID)"'
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
