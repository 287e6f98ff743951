// The Snowball English ("Porter2") stemmer.
#pragma once

#include <string>

namespace ragkernels::text {

// Stems one lowercase UTF-8 word in place, giving exactly the output of
// Snowball 3.1's english stemmer (PyStemmer 3.1.0 `Stemmer.Stemmer("english")`),
// including its exceptional words and its R1 prefixes (gener, commun, arsen,
// past, univers, later, emerg, organ, inter). Words of fewer than three letters
// (code points, not bytes) are left alone; non-ASCII letters, digits and '_'
// are non-vowels. The stem is never longer than the word, so the string's
// buffer is reused and nothing is allocated. Bytes that are not valid UTF-8
// give some stem without reading or writing outside the string.
void stem_english(std::string& word);

}  // namespace ragkernels::text
