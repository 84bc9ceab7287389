# Regenerates version.c at every build so that `drsch --version` and every report name the
# commit actually built (a configure-time value goes stale as soon as a new commit is made).
# Inputs: SRC (version.c.in), DST, SOURCE_DIR, PROJECT_VERSION, CMAKE_BUILD_TYPE, C flags.
execute_process(COMMAND git rev-parse --short=12 HEAD
  WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE DRSCH_GIT_COMMIT
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT DRSCH_GIT_COMMIT)
  set(DRSCH_GIT_COMMIT "unknown")
else()
  # results/ is what the benchmarks write (a run in two steps, or one before its results are
  # committed, builds the same code): its changes do not make the build "-dirty".
  execute_process(COMMAND git status --porcelain --untracked-files=no -- . ":(exclude)results"
    WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(dirty)
    set(DRSCH_GIT_COMMIT "${DRSCH_GIT_COMMIT}-dirty")
  endif()
endif()
configure_file(${SRC} ${DST}.new @ONLY)
file(COPY_FILE ${DST}.new ${DST} ONLY_IF_DIFFERENT)
file(REMOVE ${DST}.new)
