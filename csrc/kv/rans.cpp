// Static rANS over small alphabets (rans.h).
#include "kv/rans.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace ragkernels::kv::rans {

namespace {

constexpr uint32_t kTotal = 1u << kProbBits;
constexpr uint32_t kLow = 1u << 23;  // the state stays in [kLow, kLow << 8) between symbols

int contexts_of(int alphabet_bits, int order) { return order == 1 ? 1 << alphabet_bits : 1; }

uint8_t context_at(const uint8_t* symbols, int64_t i, int64_t cols, int order) {
  return order == 1 && i >= cols ? symbols[i - cols] : 0;
}

// Counts scaled to sum to kTotal, every present symbol keeping at least 1.
std::vector<uint32_t> normalize(const std::vector<uint64_t>& counts) {
  const size_t n = counts.size();
  std::vector<uint32_t> freq(n, 0);
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) {  // an unused context: any valid table
    freq[0] = kTotal - 1;
    freq[1] = 1;
    return freq;
  }
  uint32_t assigned = 0;
  size_t largest = 0;
  for (size_t s = 0; s < n; ++s) {
    if (counts[s] == 0) continue;
    freq[s] = std::max<uint32_t>(1, static_cast<uint32_t>(counts[s] * kTotal / total));
    assigned += freq[s];
    if (counts[s] > counts[largest]) largest = s;
  }
  // Settle the rounding on the symbols that can best afford it.
  while (assigned > kTotal) {
    size_t pick = n;
    for (size_t s = 0; s < n; ++s) {
      if (freq[s] > 1 && (pick == n || freq[s] > freq[pick])) pick = s;
    }
    --freq[pick];
    --assigned;
  }
  freq[largest] += kTotal - assigned;
  // No symbol is certain: each costs some bits, which bounds what a stream of
  // a given size can decode to (a reader checks that before allocating).
  if (freq[largest] == kTotal) {
    freq[largest] = kTotal - 1;
    freq[(largest + 1) % n] = 1;
  }
  return freq;
}

void put_u16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v & 0xff));
  out.push_back(static_cast<uint8_t>(v >> 8));
}

}  // namespace

void encode(const uint8_t* symbols, int64_t rows, int64_t cols, int alphabet_bits, int order, int states,
            std::vector<uint8_t>& out) {
  RK_CHECK_ARG(alphabet_bits >= 1 && alphabet_bits <= 8 && (order == 0 || order == 1),
               "rans: alphabet_bits in 1..8 and order 0 or 1");
  RK_CHECK_ARG(states >= 1 && states <= kMaxStates, "rans: 1 to ", kMaxStates, " states, got ", states);
  const int alphabet = 1 << alphabet_bits, contexts = contexts_of(alphabet_bits, order);
  const int64_t n = rows * cols;
  std::vector<std::vector<uint64_t>> counts(contexts, std::vector<uint64_t>(alphabet, 0));
  for (int64_t i = 0; i < n; ++i) ++counts[context_at(symbols, i, cols, order)][symbols[i]];
  std::vector<std::vector<uint32_t>> freq(contexts), start(contexts);
  for (int c = 0; c < contexts; ++c) {
    freq[c] = normalize(counts[c]);
    start[c].assign(alphabet, 0);
    for (int s = 1; s < alphabet; ++s) start[c][s] = start[c][s - 1] + freq[c][s - 1];
    for (int s = 0; s < alphabet; ++s) put_u16(out, freq[c][s]);
  }
  // rANS encodes backwards (symbol i with state i mod states); the bytes come out reversed.
  std::vector<uint8_t> payload;
  payload.reserve(static_cast<size_t>(n / 2 + 16 + 4 * states));
  uint32_t x[kMaxStates];
  std::fill(x, x + states, kLow);
  for (int64_t i = n - 1; i >= 0; --i) {
    uint32_t& state = x[i % states];
    const int c = context_at(symbols, i, cols, order);
    const uint32_t f = freq[c][symbols[i]];
    const uint32_t x_max = ((kLow >> kProbBits) << 8) * f;
    while (state >= x_max) {
      payload.push_back(static_cast<uint8_t>(state & 0xff));
      state >>= 8;
    }
    state = ((state / f) << kProbBits) + (state % f) + start[c][symbols[i]];
  }
  for (int j = states - 1; j >= 0; --j) {  // state 0's bytes end up first
    for (int k = 0; k < 4; ++k) {
      payload.push_back(static_cast<uint8_t>(x[j] & 0xff));
      x[j] >>= 8;
    }
  }
  std::reverse(payload.begin(), payload.end());  // the final states first, big-endian
  out.insert(out.end(), payload.begin(), payload.end());
}

namespace {

// One decoding step's table entry per (context, slot): the symbol (bits
// 0-7), its frequency (bits 8-19) and slot - start (bits 20-31), so a step
// is one lookup: x <- freq * (x >> 12) + (slot - start).
struct DecodeTable {
  std::vector<uint32_t> entry;  // [contexts][kTotal]

  DecodeTable(const uint8_t* data, int contexts, int alphabet) : entry(static_cast<size_t>(contexts) * kTotal) {
    for (int c = 0; c < contexts; ++c) {
      uint32_t sum = 0;
      for (int s = 0; s < alphabet; ++s) {
        const size_t at = (static_cast<size_t>(c) * alphabet + s) * 2;
        const uint32_t f = data[at] | (static_cast<uint32_t>(data[at + 1]) << 8);
        RK_CHECK_FORMAT(f < kTotal, "kv stream: a frequency table entry is ", f, " (at most ", kTotal - 1, ")");
        RK_CHECK_FORMAT(sum + f <= kTotal, "kv stream: a frequency table sums past ", kTotal);
        for (uint32_t k = 0; k < f; ++k) {
          entry[static_cast<size_t>(c) * kTotal + sum + k] = static_cast<uint32_t>(s) | f << 8 | k << 20;
        }
        sum += f;
      }
      RK_CHECK_FORMAT(sum == kTotal, "kv stream: a frequency table sums to ", sum, ", not ", kTotal);
    }
  }
};

// Decodes symbols [begin, end) with kStates interleaved states (symbol i by
// state i mod kStates, begin a multiple of kStates). Renormalization reads
// without a bounds check while at least 2 bytes per state remain (a step
// reads at most 2: x >= 2^11 after it), and with one otherwise.
template <int kStates>
void decode_symbols(const DecodeTable& table, int64_t cols, int order, uint32_t* x, const uint8_t*& p,
                    const uint8_t* end, uint8_t* symbols, int64_t n) {
  const uint32_t* entry = table.entry.data();
  int64_t i = 0;
  for (; i + kStates <= n; i += kStates) {
    const bool room = end - p >= 2 * kStates;
    for (int j = 0; j < kStates; ++j) {
      const int64_t at = i + j;
      const size_t context = order == 1 && at >= cols ? symbols[at - cols] : 0;
      const uint32_t e = entry[context * kTotal + (x[j] & (kTotal - 1))];
      symbols[at] = static_cast<uint8_t>(e);
      x[j] = ((e >> 8) & (kTotal - 1)) * (x[j] >> kProbBits) + (e >> 20);
      if (room) {  // at most two bytes: read without branches (a byte is needed about every other step)
        const bool first = x[j] < kLow;
        x[j] = first ? (x[j] << 8) | p[0] : x[j];
        p += first;
        const bool second = x[j] < kLow;
        x[j] = second ? (x[j] << 8) | p[0] : x[j];
        p += second;
      } else {
        while (x[j] < kLow) {
          RK_CHECK_FORMAT(p < end, "kv stream: an entropy-coded section is truncated");
          x[j] = (x[j] << 8) | *p++;
        }
      }
    }
  }
  for (int j = 0; i < n; ++i, ++j) {
    const size_t context = order == 1 && i >= cols ? symbols[i - cols] : 0;
    const uint32_t e = entry[context * kTotal + (x[j] & (kTotal - 1))];
    symbols[i] = static_cast<uint8_t>(e);
    x[j] = ((e >> 8) & (kTotal - 1)) * (x[j] >> kProbBits) + (e >> 20);
    while (x[j] < kLow) {
      RK_CHECK_FORMAT(p < end, "kv stream: an entropy-coded section is truncated");
      x[j] = (x[j] << 8) | *p++;
    }
  }
}

}  // namespace

void decode(const uint8_t* data, size_t size, int64_t rows, int64_t cols, int alphabet_bits, int order, int states,
            uint8_t* symbols) {
  RK_CHECK_ARG(alphabet_bits >= 1 && alphabet_bits <= 8 && (order == 0 || order == 1),
               "rans: alphabet_bits in 1..8 and order 0 or 1");
  RK_CHECK_ARG(states == 1 || states == 4, "rans: the decoder takes 1 or 4 states, got ", states);
  const int alphabet = 1 << alphabet_bits, contexts = contexts_of(alphabet_bits, order);
  const size_t table_bytes = static_cast<size_t>(contexts) * alphabet * 2;
  RK_CHECK_FORMAT(size >= table_bytes + 4 * static_cast<size_t>(states), "kv stream: an entropy-coded section is truncated (",
                  size, " bytes, its tables and states alone take ", table_bytes + 4 * states, ")");
  const DecodeTable table(data, contexts, alphabet);
  const uint8_t* p = data + table_bytes;
  const uint8_t* end = data + size;
  uint32_t x[kMaxStates];
  for (int j = 0; j < states; ++j) {
    x[j] = 0;
    for (int k = 0; k < 4; ++k) x[j] = (x[j] << 8) | *p++;
    RK_CHECK_FORMAT(x[j] >= kLow, "kv stream: an entropy-coded section is corrupt (bad initial state)");
  }
  if (states == 4) {
    decode_symbols<4>(table, cols, order, x, p, end, symbols, rows * cols);
  } else {
    decode_symbols<1>(table, cols, order, x, p, end, symbols, rows * cols);
  }
  bool final_states = true;
  for (int j = 0; j < states; ++j) final_states &= x[j] == kLow;
  RK_CHECK_FORMAT(final_states && p == end, "kv stream: an entropy-coded section is corrupt (",
                  final_states ? "bytes left over" : "final state mismatch", ")");
}

}  // namespace ragkernels::kv::rans
