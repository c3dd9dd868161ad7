# The CPU programs built with AddressSanitizer and UndefinedBehaviorSanitizer, run by
# dev/test/test_sanitize.sh as part of `make test`.
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_CFLAGS = -march=native -fopenmp -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -std=gnu11 -I. $(SAN_FLAGS)
SAN_BINS = build/asan/train_gpt build/asan/test_gpt build/asan/test_llmc
FLAGS_asan = $(CC) $(SAN_CFLAGS) $(LDLIBS)
$(eval $(call flags_stamp,asan))

build/asan/train_gpt: train_gpt.c $(LLMC_HEADERS) build/flags.asan
	@mkdir -p build/asan
	$(CC) $(SAN_CFLAGS) -o $@ train_gpt.c $(LDLIBS)

build/asan/test_gpt: test_gpt.c train_gpt.c $(LLMC_HEADERS) build/flags.asan
	@mkdir -p build/asan
	$(CC) $(SAN_CFLAGS) -o $@ test_gpt.c $(LDLIBS)

build/asan/test_llmc: dev/test/test_llmc.c $(LLMC_HEADERS) build/flags.asan
	@mkdir -p build/asan
	$(CC) $(SAN_CFLAGS) -o $@ $< $(LDLIBS)

TEST_BINS += $(SAN_BINS)
TESTS += dev/test/test_sanitize.sh
