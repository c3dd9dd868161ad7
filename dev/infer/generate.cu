// The generator's CUDA build: dev/infer/generate.c with its forward on the GPU (llmc/infer.h's
// InferCU, --device gpu, the default here) or on the CPU (--device cpu). Decoding, the
// tokenizer and the output are the same code as the CPU build's.
#include "generate.c"
