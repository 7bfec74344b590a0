<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


/**
 * Navigation hook: a "Risk alerts" link in the course's navigation for those who may see it.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

/**
 * Add the alerts page to the course navigation.
 *
 * @param navigation_node $navigation course node
 * @param stdClass $course
 * @param context_course $context
 */
function local_riskstream_extend_navigation_course(navigation_node $navigation, stdClass $course,
        context_course $context): void {
    if (has_capability('local/riskstream:viewalerts', $context)) {
        $url = new moodle_url('/local/riskstream/index.php', ['id' => $course->id]);
        $navigation->add(get_string('alertspage', 'local_riskstream'), $url,
            navigation_node::TYPE_SETTING, null, 'local_riskstream', new pix_icon('i/warning', ''));
    }
}
