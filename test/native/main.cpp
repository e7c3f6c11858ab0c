#include "harness.h"

int main(int argc, char** argv) { return th::run_all(argc, argv); }
